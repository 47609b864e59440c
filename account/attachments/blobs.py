"""Attachment content on disk, addressed by its SHA-256: ``<root>/<sha256[:2]>/<sha256>``.

Content is written to a temporary file in ``<root>/tmp`` (same file system), hashed and counted
while it streams, and moved into place with ``os.replace`` only when complete, so a reader never
sees a partial blob. A digest that is already there is not written twice (deduplication); two
writers racing on the same digest write identical bytes, so either rename wins. Blobs are never
deleted here: one whose database row was rolled back stays as an orphan that a later upload of
the same content reuses.

``BlobError``
├── ``BlobTooLarge``    more bytes than the writer's limit
└── ``DigestMismatch``  the content does not hash to the digest it was announced under
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = [
    "SNIFF_BYTES",
    "BlobError",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "DigestMismatch",
    "is_digest",
]

SNIFF_BYTES = 512
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobError(Exception):
    """Base of the blob store's errors."""


class BlobTooLarge(BlobError):
    """The content is over the limit it was written under."""


class DigestMismatch(BlobError):
    """The content does not hash to the expected SHA-256."""


def is_digest(value: str) -> bool:
    """Whether ``value`` is a lower-case hex SHA-256 (the only names the store accepts)."""
    return bool(_DIGEST_RE.match(value))


class BlobStore:
    """SHA-256-addressed files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not is_digest(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """The blob for reading; ``FileNotFoundError`` when it is not here."""
        return self.path(sha256).open("rb")

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its digest."""
        with self.writer(max_bytes=len(data)) as writer:
            writer.write(data)
            return writer.commit()

    def writer(self, *, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes=max_bytes)


class BlobWriter:
    """Streams one blob into a temporary file; ``commit`` moves it into place.

    Leaving the ``with`` block without ``commit`` (an error, a size or digest refusal) removes
    the temporary file.
    """

    def __init__(self, store: BlobStore, *, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()
        tmp_dir = store.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        self._tmp = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise BlobError("writer is closed")
        if self.size + len(data) > self.max_bytes:
            raise BlobTooLarge(f"over the limit of {self.max_bytes} bytes")
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self, expected_sha256: str | None = None) -> str:
        """Move the content into place (unless already there) and return its digest."""
        if self._file is None:
            raise BlobError("writer is closed")
        digest = self.sha256
        if expected_sha256 is not None and digest != expected_sha256:
            raise DigestMismatch("content does not match its digest")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        final = self.store.path(digest)
        if final.is_file():
            self._tmp.unlink(missing_ok=True)  # the same content is already stored
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, final)
        return digest

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()
