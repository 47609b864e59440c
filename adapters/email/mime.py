"""Small helpers over ``email.message.Message`` (compat32) shared by the parsing modules.

Header values are read raw (``raw_items``): compat32 wraps a value with 8-bit bytes in a lossy
``Header``; here such bytes are read as UTF-8 (RFC 6532). Body bytes are decoded with their
declared charset and errors replaced; an unknown label, or one naming a codec that is not a text
encoding (``rot13``, ``hex``) or that cannot replace errors (``idna``), falls back to UTF-8.
"""

from __future__ import annotations

import codecs
import re
from email.message import Message

__all__ = [
    "charset_of",
    "decode_bytes",
    "header_value",
    "header_values",
    "msg_ids",
    "payload_bytes",
    "subparts",
]

_MSG_ID = re.compile(r"<([^<>\s]{1,250})>")
_CHARSET_ALIASES = {
    "cp-1251": "cp1251",
    "win-1251": "cp1251",
    "x-cp1251": "cp1251",
    "windows1251": "cp1251",
    "koi8r": "koi8_r",
    "x-koi8-r": "koi8_r",
    "us-ascii": "utf-8",  # 8-bit bytes under a us-ascii label are nearly always UTF-8
    "ascii": "utf-8",
}
_REFUSED_CODECS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape"})


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def _utf8(value: str) -> str:
    """Raw 8-bit header bytes (surrogate-escaped by the parser) read as UTF-8."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of a header, unfolded, in order."""
    wanted = name.lower()
    return [_utf8(_unfold(str(v))) for k, v in msg.raw_items() if k.lower() == wanted]


def header_value(msg: Message, name: str) -> str | None:
    """The first value of a header."""
    values = header_values(msg, name)
    return values[0] if values else None


def msg_ids(value: str | None) -> list[str]:
    """The ``<id>`` values of a Message-ID, In-Reply-To or References header, brackets off."""
    return _MSG_ID.findall(value or "")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text of body bytes in ``charset``; never raises."""
    name = _CHARSET_ALIASES.get((charset or "").lower(), charset or "utf-8")
    try:
        info = codecs.lookup(name)
        # _is_text_encoding is how str.decode itself tells text codecs from rot13 and hex.
        if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
            raise LookupError(name)
        return data.decode(info.name, "replace")
    except (LookupError, UnicodeError, ValueError):
        return data.decode("utf-8", "replace")


def charset_of(part: Message) -> str | None:
    """The declared charset of a part, or None."""
    try:
        return part.get_content_charset()
    except (LookupError, UnicodeError, ValueError):
        return None


def payload_bytes(part: Message) -> bytes:
    """A leaf part's content with its transfer encoding undone."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def subparts(part: Message) -> list[Message]:
    """The parts of a multipart (or the message inside a message/*), else nothing."""
    payload: object = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
