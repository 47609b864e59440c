"""What an attachment is: content sniffing, declared-type checks and safe file names. Pure.

Sniffing looks at the first bytes for the types a help desk sees most (PNG, JPEG, GIF, PDF,
ZIP and plain UTF-8 text). A declared type is refused only when it contradicts what the bytes
show: a PNG declared as a PDF, text declared as an image, a binary declared as text. Types the
sniffer does not know (a CAD file, a spreadsheet) are kept as declared; downloads are served as
attachments with ``nosniff``, so a browser never renders them in the node's origin.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from urllib.parse import quote

__all__ = [
    "ContentMismatch",
    "content_disposition",
    "normalise_content_type",
    "resolve_content_type",
    "sanitise_filename",
    "sniff",
]

MAX_FILENAME = 200
OCTET_STREAM = "application/octet-stream"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"PK\x07\x08", "application/zip"),  # a spanned archive
)
# Declared types that name each sniffed kind (aliases and ZIP-based document formats).
_ALIASES: dict[str, frozenset[str]] = {
    "image/png": frozenset({"image/png", "image/x-png", "image/apng"}),
    "image/jpeg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    "image/gif": frozenset({"image/gif"}),
    "application/pdf": frozenset({"application/pdf", "application/x-pdf"}),
    "application/zip": frozenset(
        {
            "application/zip",
            "application/x-zip",
            "application/x-zip-compressed",
            "application/java-archive",
            "application/epub+zip",
            "application/vnd.android.package-archive",
        }
    ),
}
_ZIP_PREFIXES = ("application/vnd.openxmlformats-officedocument.", "application/vnd.oasis.")
_TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/javascript", "image/svg+xml"}
)
_MIME_PART = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"  # type/subtype fits in 255
_ESSENCE_RE = re.compile(rf"^{_MIME_PART}/{_MIME_PART}$")
_TEXT_CONTROLS = frozenset("\t\n\r\f")
# Controls, format characters (bidi overrides, zero-width), surrogates, line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class ContentMismatch(ValueError):
    """The declared content type contradicts the content."""

    def __init__(self) -> None:
        super().__init__("content type does not match the content")


def sniff(head: bytes) -> str | None:
    """The type the first bytes show, or None when they show none we know."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return "text/plain" if head and _looks_like_text(head) else None


def _looks_like_text(head: bytes) -> bool:
    """UTF-8 without control characters other than tab, newlines and form feed."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=False)  # the head may end inside a character
    except UnicodeDecodeError:
        return False
    return not any(unicodedata.category(ch) == "Cc" and ch not in _TEXT_CONTROLS for ch in text)


def _kind(essence: str) -> str | None:
    """The sniffable kind a declared type claims, if any."""
    for kind, aliases in _ALIASES.items():
        if essence in aliases:
            return kind
    if essence.startswith(_ZIP_PREFIXES):
        return "application/zip"
    if essence.startswith("text/") or essence in _TEXT_TYPES:
        return "text/plain"
    return None


def normalise_content_type(declared: str | None) -> str:
    """The ``type/subtype`` of a declaration (parameters dropped), or octet-stream if malformed."""
    essence = (declared or "").split(";", 1)[0].strip().lower()
    return essence if _ESSENCE_RE.match(essence) else OCTET_STREAM


def resolve_content_type(declared: str | None, head: bytes) -> str:
    """The type to store for content starting with ``head`` uploaded as ``declared``.

    Raises ``ContentMismatch`` when the declaration contradicts the content; a missing,
    malformed or generic declaration yields the sniffed type (or ``application/octet-stream``).
    """
    essence = normalise_content_type(declared)
    sniffed = sniff(head)
    if essence == OCTET_STREAM:
        return sniffed or OCTET_STREAM
    claimed = _kind(essence)
    if sniffed is not None and sniffed != "text/plain":
        if claimed != sniffed:
            raise ContentMismatch()
        return essence
    if claimed is not None and claimed != "text/plain":
        raise ContentMismatch()  # an image, PDF or archive that does not start like one
    if claimed == "text/plain" and sniffed is None and head:
        raise ContentMismatch()  # declared as text, but binary
    return essence


def sanitise_filename(name: str | None) -> str:
    """A display name safe anywhere: no directories, control or format characters, ≤200 chars."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _UNSAFE_CATEGORIES)
    text = text.strip().strip(".").strip()
    if not text:
        return "attachment"
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            text = stem[: MAX_FILENAME - len(ext) - 1].rstrip() + "." + ext
        else:
            text = text[:MAX_FILENAME]
    return text


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name in RFC 5987 form."""
    fallback = (
        "".join(
            ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\;' else "_" for ch in filename
        ).strip()
        or "attachment"
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
