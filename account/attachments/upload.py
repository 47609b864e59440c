"""Reading a ``multipart/form-data`` upload as it streams, straight into the blob store.

Starlette's form parser spools a whole file before the handler runs; this one feeds the request
stream through ``python_multipart`` and writes the ``file`` part's bytes into a ``BlobWriter``
chunk by chunk, so an upload over the hard limit stops (``BlobTooLarge``) as soon as it passes
it. Other parts may only be a few short text fields; anything else is a ``BadUpload``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from account.attachments.blobs import BlobWriter

__all__ = ["BadUpload", "Upload", "read_upload"]

FILE_FIELD = "file"
MAX_FIELDS = 5
MAX_FIELD_BYTES = 1_000


class BadUpload(ValueError):
    """The request is not a well-formed upload of one file."""


@dataclass
class Upload:
    """What arrived besides the content: the file's name and declared type, and the fields."""

    filename: str | None = None
    content_type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _Collector:
    """``python_multipart`` callbacks: headers per part, field values, file chunks to write."""

    def __init__(self) -> None:
        self.upload = Upload()
        self.pending: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._part: str | None = None  # "file", a field name, or None between parts
        self._data = bytearray()
        self._files = 0
        self.ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers, self._part, self._data = {}, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._name.strip().lower()] = self._value.strip()
        self._name, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = _decode(options.get(b"name", b""))
        if not name:
            raise BadUpload("every part needs a name")
        if b"filename" in options or name == FILE_FIELD:
            self._files += 1
            if name != FILE_FIELD or self._files > 1:
                raise BadUpload(f"send exactly one file, as the {FILE_FIELD!r} field")
            self.upload.filename = _decode(options.get(b"filename", b""))
            declared = self._headers.get(b"content-type")
            self.upload.content_type = _decode(declared) if declared else None
            self._part = FILE_FIELD
        else:
            if len(self.upload.fields) >= MAX_FIELDS or name in self.upload.fields:
                raise BadUpload("too many form fields")
            self._part = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == FILE_FIELD:
            self.pending.append(data[start:end])
            return
        self._data += data[start:end]
        if len(self._data) > MAX_FIELD_BYTES:
            raise BadUpload("form field too long")

    def on_part_end(self) -> None:
        if self._part is not None and self._part != FILE_FIELD:
            self.upload.fields[self._part] = _decode(bytes(self._data))
        self._part = None

    def on_end(self) -> None:
        self.ended = True


async def read_upload(
    stream: AsyncIterator[bytes], *, content_type: str, writer: BlobWriter
) -> Upload:
    """Parse the request body, writing the file's content into ``writer`` (not committed).

    Raises ``BadUpload`` for a body that is not one file in ``multipart/form-data`` and lets
    ``BlobTooLarge`` through as soon as the content passes the writer's limit.
    """
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise BadUpload("send the file as multipart/form-data")
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            parser.write(chunk)
            if collector.pending:
                data, collector.pending = b"".join(collector.pending), []
                await run_in_threadpool(writer.write, data)
        parser.finalize()
    except FormParserError as exc:
        raise BadUpload("malformed multipart body") from exc
    if not collector.ended:
        raise BadUpload("the multipart body ends early")
    if collector.upload.filename is None:
        raise BadUpload(f"no {FILE_FIELD!r} part in the upload")
    return collector.upload
