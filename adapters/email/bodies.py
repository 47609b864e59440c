"""The text and the files of a mail: which part is the body, and what travels on.

The body is text/plain when there is one (``format=flowed`` undone, RFC 3676), else the HTML
converted by ``htmltext``; in ``multipart/alternative`` the plain alternative is read for text
but files are taken from every alternative, because Apple Mail puts an inline photo only in the
HTML one (the same file twice is kept once). ``multipart/signed`` gives its first part,
``multipart/encrypted`` nothing, ``multipart/report`` its human-readable part. A forwarded
``message/rfc822`` is a file (``.eml``); PGP/S-MIME signatures are not files. Text is bounded by
``max_text_chars`` over all parts (HTML by ten times that), files by ``max_attachment_bytes``
(larger ones are listed by name in ``skipped``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message

from adapters.email.addresses import decode_words
from adapters.email.htmltext import html_to_text
from adapters.email.mime import charset_of, decode_bytes, header_value, payload_bytes, subparts

__all__ = ["Attachment", "Body", "raw_body_text", "read_body"]

_HTML_PER_TEXT = 10  # markup characters converted per character of text allowed
_SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
}


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that travels on up the chain."""

    filename: str
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Body:
    """The readable text of a mail and its files."""

    text: str
    from_html: bool
    attachments: tuple[Attachment, ...]
    skipped: tuple[str, ...]
    defects: tuple[str, ...]


@dataclass(slots=True)
class _Walk:
    max_attachment_bytes: int | None
    max_text_chars: int
    text_chars: int = 0
    defects: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    from_html: bool = False
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)


def read_body(msg: Message, *, max_attachment_bytes: int | None, max_text_chars: int) -> Body:
    """Walk the parts of ``msg`` (its depth is bounded by ``prescan``)."""
    walk = _Walk(max_attachment_bytes=max_attachment_bytes, max_text_chars=max_text_chars)
    _collect(msg, walk, want_text=True)
    text = "\n".join(t for t in walk.texts if t.strip())
    if len(text) > max_text_chars:
        text = text[:max_text_chars]
        walk.defects.append("text_truncated")
    return Body(
        text=text,
        from_html=walk.from_html,
        attachments=tuple(walk.attachments),
        skipped=tuple(walk.skipped),
        defects=tuple(dict.fromkeys(walk.defects)),
    )


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed: join soft-broken lines of the same quote depth."""
    out: list[str] = []
    pending: list[str] = []  # pieces of the paragraph being joined
    pending_depth = 0
    for line in text.split("\n"):
        stripped = line.lstrip(">")
        depth = len(line) - len(stripped)
        if stripped.startswith(" "):
            stripped = stripped[1:]  # space-stuffing
        soft = stripped.endswith(" ") and stripped != "-- "
        if soft and delsp:
            stripped = stripped[:-1]
        if pending and depth != pending_depth:
            out.append(_quoted("".join(pending), pending_depth))
            pending = []
        pending.append(stripped)
        pending_depth = depth
        if not soft:
            out.append(_quoted("".join(pending), pending_depth))
            pending = []
    if pending:
        out.append(_quoted("".join(pending), pending_depth))
    return "\n".join(out)


def _quoted(text: str, depth: int) -> str:
    return (">" * depth + " " + text) if depth else text


def _text_of(part: Message, walk: _Walk) -> str:
    limit = walk.max_text_chars - walk.text_chars
    if limit <= 0:  # the budget is spent on earlier parts
        walk.defects.append("text_truncated")
        return ""
    text = (
        decode_bytes(payload_bytes(part), charset_of(part))
        .replace("\r\n", "\n")
        .replace("\r", "\n")
    )
    if part.get_content_type() == "text/plain":
        if len(text) > limit:
            text = text[:limit]
            walk.defects.append("text_truncated")
        if str(part.get_param("format", "") or "").lower() == "flowed":
            delsp = str(part.get_param("delsp", "") or "").lower() == "yes"
            text = _unflow(text, delsp=delsp)
        return text
    if len(text) > limit * _HTML_PER_TEXT:
        # Own words come first in a reply; what is cut is nearly always quoted history.
        text = text[: limit * _HTML_PER_TEXT]
        walk.defects.append("html_truncated")
    return html_to_text(text)


def _filename(part: Message, walk: _Walk) -> str:
    try:
        name = part.get_filename()
    except (LookupError, UnicodeError, ValueError):
        name = None
    if name:
        name = decode_words(str(name))
        name = re.split(r"[/\\]", name)[-1]
        name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    if not name:
        ext = _EXTENSIONS.get(part.get_content_type(), ".bin")
        name = f"attachment-{len(walk.attachments) + len(walk.skipped) + 1}{ext}"
    return name[-200:]


def _add_attachment(part: Message, walk: _Walk, data: bytes, ctype: str) -> None:
    digest = hashlib.sha256(ctype.encode() + b"\0" + data).digest()
    if digest in walk.seen:  # the same image in the text and the HTML alternative
        return
    walk.seen.add(digest)
    name = _filename(part, walk)
    if walk.max_attachment_bytes is not None and len(data) > walk.max_attachment_bytes:
        walk.skipped.append(name)
        return
    disposition = part.get_content_disposition()
    content_id = header_value(part, "Content-ID")
    walk.attachments.append(
        Attachment(
            filename=name,
            content_type=ctype,
            data=data,
            inline=disposition == "inline" or (disposition is None and content_id is not None),
            content_id=content_id.strip().strip("<>") if content_id else None,
        )
    )


def _collect(part: Message, walk: _Walk, *, want_text: bool) -> None:
    ctype = part.get_content_type()
    if part.get_content_maintype() == "message":
        _collect_message(part, walk, ctype)
        return
    if part.is_multipart():
        children = subparts(part)
        if ctype == "multipart/alternative":
            chosen = _preferred_alternative(children)
            for sub in children:
                _collect(sub, walk, want_text=want_text and sub is chosen)
        elif ctype == "multipart/encrypted":
            return  # nothing readable without the recipient's key
        elif ctype == "multipart/signed":
            for sub in children[:1]:
                _collect(sub, walk, want_text=want_text)
        elif ctype == "multipart/report":
            # The human-readable first part is the text; the status and the returned
            # message are read by dsn.read_reports, not attachments.
            for sub in children[:1]:
                _collect(sub, walk, want_text=want_text)
        else:
            for sub in children:
                _collect(sub, walk, want_text=want_text)
        return
    if ctype in _SIGNATURE_TYPES:
        return
    if part.get_content_maintype() == "multipart":
        # A multipart whose boundary never appears: the parser keeps it as one text blob.
        if want_text:
            _add_text(walk, decode_bytes(payload_bytes(part), None))
        return
    is_body_text = (
        ctype in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and not part.get_filename()
    )
    if is_body_text:
        if want_text:
            _add_text(walk, _text_of(part, walk))
            walk.from_html = walk.from_html or ctype == "text/html"
        return
    _add_attachment(part, walk, payload_bytes(part), ctype)


def _add_text(walk: _Walk, text: str) -> None:
    room = walk.max_text_chars - walk.text_chars
    if len(text) > room:
        text = text[: max(room, 0)]
        walk.defects.append("text_truncated")
    walk.texts.append(text)
    walk.text_chars += len(text)


def _collect_message(part: Message, walk: _Walk, ctype: str) -> None:
    """A message/* part: a forwarded mail is an attachment; a delivery status is not."""
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        return
    inner = subparts(part)
    try:
        data = inner[0].as_bytes() if inner else payload_bytes(part)
    except (UnicodeError, LookupError, ValueError):
        # The generator cannot re-encode what the parser decoded with replacements.
        data = inner[0].as_string().encode("utf-8", "surrogateescape")
    _add_attachment(part, walk, data, ctype)


def _has_plain(part: Message) -> bool:
    if part.get_content_type() == "text/plain":
        return True
    if part.is_multipart() and part.get_content_type() != "multipart/alternative":
        return any(_has_plain(p) for p in subparts(part)[:1])
    return False


def _preferred_alternative(alternatives: list[Message]) -> Message | None:
    for sub in alternatives:
        if _has_plain(sub):
            return sub
    return alternatives[-1] if alternatives else None


def raw_body_text(raw: bytes) -> str:
    """Everything after the header block, as UTF-8: the fallback when parts cannot be walked."""
    head_end = re.search(rb"\r?\n\r?\n", raw)
    body = raw[head_end.end() :] if head_end else b""
    return body.decode("utf-8", "replace")
