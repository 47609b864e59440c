"""Caps checked on the raw bytes before the standard-library parser sees them.

Python's ``email`` parser recurses once per MIME level (``RecursionError`` at depth 1 000) and
builds an object per part, so a hostile mail is measured first with one flat, linear pass that
follows the feed parser's own rules: lines end at CR, LF or CRLF; a header block ends at the
first line that is not a header line; a line ``--<boundary>`` (optionally ``--`` and blanks
after) of any open multipart starts a part or, with ``--``, closes it, even in the middle of a
header block; a ``message/*`` body (``message/rfc822`` by default inside ``multipart/digest``) is
another header block one level deeper, except ``message/delivery-status``, whose blocks end at
the first blank line and so cannot nest. Content types and boundaries are read with the standard
library itself, so both sides agree on them. The pass may count more than the parser builds,
never fewer. ``Content-Type`` and ``Content-Disposition`` headers are also held to 8 KB and 64
parameter separators each (``header_too_large``): the library splits their parameters in
quadratic time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import Literal

__all__ = ["DEFAULT_CAPS", "CapReason", "Caps", "prescan"]

CapReason = Literal["too_large", "too_many_parts", "too_deep", "header_too_large"]

# The standard library splits parameters of these headers in quadratic time (a 60 KB
# Content-Type of quoted semicolons took 12 s), so each is held far below that: real ones are a
# few hundred bytes with a handful of parameters, RFC 2231 continuations included.
_PARAMETER_HEADERS = frozenset({b"content-type", b"content-disposition"})
_MAX_PARAMETER_HEADER_BYTES = 8 * 1024
_MAX_PARAMETER_SEPARATORS = 64

# email.feedparser.headerRE, on bytes.
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")


@dataclass(frozen=True, slots=True)
class Caps:
    """Limits for one inbound mail; the defaults suit human replies with a few photos."""

    max_bytes: int = 25 * 1024 * 1024
    max_parts: int = 100
    max_depth: int = 12
    max_header_bytes: int = 64 * 1024
    max_recipients: int = 100
    max_lines: int = 1_000_000  # a 25 MB base64 photo is 340 000 lines


DEFAULT_CAPS = Caps()


@dataclass(slots=True)
class _Entity:
    """A part whose header block is being read."""

    depth: int
    default_type: str
    header_bytes: int = 0
    content_type: bytes | None = None
    in_content_type: bool = False
    in_mime_header: bool = False
    mime_header_bytes: int = 0
    mime_header_semicolons: int = 0


@dataclass(frozen=True, slots=True)
class _Open:
    boundary: bytes
    depth: int
    digest: bool


def _body_kind(entity: _Entity) -> tuple[str, bytes | None]:
    """(content type, boundary) of a finished header block, as the standard library reads them."""
    if entity.content_type is None:
        return entity.default_type, None
    probe = Message()
    probe.set_default_type(entity.default_type)
    probe["Content-Type"] = entity.content_type.decode("ascii", "surrogateescape").strip()
    ctype = probe.get_content_type()
    if not ctype.startswith("multipart/"):
        return ctype, None
    boundary = probe.get_boundary()
    # Surrogates give back the raw bytes; a character decoded from RFC 2231 can never match a
    # line as the parser reads it, so any encoding errs towards counting more, not fewer.
    return ctype, None if boundary is None else boundary.encode("utf-8", "surrogateescape")


def _separator(line: bytes, open_parts: list[_Open]) -> tuple[int, bool] | None:
    """(index in ``open_parts``, closing?) when ``line`` is a boundary line of an open multipart."""
    for index in range(len(open_parts) - 1, -1, -1):
        marker = b"--" + open_parts[index].boundary
        if not line.startswith(marker):
            continue
        rest = line[len(marker) :]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        if not rest.strip(b" \t"):
            return index, closing
    return None


def prescan(raw: bytes, caps: Caps) -> CapReason | None:
    """The first cap that ``raw`` breaks, or None."""
    if len(raw) > caps.max_bytes:
        return "too_large"
    lines = raw.splitlines()  # bytes.splitlines splits at CR, LF and CRLF only, as feedparser
    if len(lines) > caps.max_lines:  # the parser's cost is per line: 10 million short ones take 6 s
        return "too_large"
    open_parts: list[_Open] = []
    entity: _Entity | None = _Entity(depth=0, default_type="text/plain")
    parts = 1
    i = 0
    while i < len(lines):
        line = lines[i]
        if open_parts and line.startswith(b"--"):
            hit = _separator(line, open_parts)
            if hit is not None:
                index, closing = hit
                owner = open_parts[index]
                del open_parts[index + 1 :]
                entity = None
                if closing:
                    open_parts.pop()
                else:
                    parts += 1
                    if parts > caps.max_parts:
                        return "too_many_parts"
                    if owner.depth + 1 > caps.max_depth:
                        return "too_deep"
                    default = "message/rfc822" if owner.digest else "text/plain"
                    entity = _Entity(depth=owner.depth + 1, default_type=default)
                i += 1
                continue
        if entity is None:  # a body line
            i += 1
            continue
        if _HEADER_LINE.match(line):
            entity.header_bytes += len(line) + 2
            if entity.header_bytes > caps.max_header_bytes:
                return "header_too_large"
            if line[:1] in (b" ", b"\t"):
                if entity.in_content_type and entity.content_type is not None:
                    entity.content_type += b" " + line.strip()
            else:
                name, _, value = line.partition(b":")
                first_ctype = name.lower() == b"content-type" and entity.content_type is None
                entity.in_content_type = first_ctype
                if first_ctype:
                    entity.content_type = value
                entity.in_mime_header = name.lower() in _PARAMETER_HEADERS
                entity.mime_header_bytes = entity.mime_header_semicolons = 0
            if entity.in_mime_header:
                entity.mime_header_bytes += len(line)
                entity.mime_header_semicolons += line.count(b";")
                if (
                    entity.mime_header_bytes > _MAX_PARAMETER_HEADER_BYTES
                    or entity.mime_header_semicolons > _MAX_PARAMETER_SEPARATORS
                ):
                    return "header_too_large"
            i += 1
            continue
        # The header block ended: a blank line is consumed, any other line starts the body.
        ctype, boundary = _body_kind(entity)
        depth = entity.depth
        entity = None
        if ctype.startswith("multipart/") and boundary is not None:
            open_parts.append(_Open(boundary, depth, ctype == "multipart/digest"))
        elif ctype.startswith("message/") and ctype != "message/delivery-status":
            parts += 1
            if parts > caps.max_parts:
                return "too_many_parts"
            if depth + 1 > caps.max_depth:
                return "too_deep"
            entity = _Entity(depth=depth + 1, default_type="text/plain")
        if not line:
            i += 1
        # else: read the same line again, now as the first line of the body or nested message.
    return None
