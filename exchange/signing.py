"""Ed25519 keys, key ids and envelope signatures.

A key id (``kid``) is the first 16 hex characters of SHA-256 over the raw 32-byte public key.
An envelope's ``sig`` is Ed25519 over the RFC 8785 canonical JSON of the envelope without its
``sig`` member, base64url without padding. Private keys live in PEM files with mode 0600; this
module refuses to read one that group or others may read.

Everything here is pure (no I/O except the key-file helpers) and tested with golden vectors.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange.canonical import canonical, canonical_members, join_members
from exchange.errors import KeyFileError, RejectedMessage

__all__ = [
    "b64url",
    "b64url_decode",
    "generate_key",
    "kid_of",
    "load_key_file",
    "private_key_from_pem",
    "public_key_b64",
    "public_key_from_b64",
    "sign_and_serialize",
    "sign_envelope",
    "verify_envelope",
    "write_key_file",
]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def kid_of(public: Ed25519PublicKey | bytes) -> str:
    """The key id: first 16 hex chars of SHA-256 of the raw public key."""
    raw = public if isinstance(public, bytes) else raw_public(public)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64url(raw_public(public))


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError("not an Ed25519 private key")
    return key


def write_key_file(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a private key as PEM, created with mode 0600 (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))


def load_key_file(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"no key file at {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is readable by others (mode {oct(mode & 0o777)}); chmod 600")
    return private_key_from_pem(path.read_bytes())


def signing_input(envelope: dict[str, Any]) -> bytes:
    """The canonical bytes that ``sig`` covers: the envelope without ``sig``."""
    return canonical({k: v for k, v in envelope.items() if k != "sig"})


def sign_envelope(envelope: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return a copy of the envelope with ``kid`` and ``sig`` set for this key."""
    unsigned = {k: v for k, v in envelope.items() if k != "sig"}
    unsigned["kid"] = kid_of(key.public_key())
    return unsigned | {"sig": b64url(key.sign(signing_input(unsigned)))}


def sign_and_serialize(envelope: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The canonical bytes of ``sign_envelope(envelope, key)``, with each member serialised
    once: the signing input and the signed envelope share all their members but ``sig``."""
    unsigned = {k: v for k, v in envelope.items() if k != "sig"}
    unsigned["kid"] = kid_of(key.public_key())
    members = canonical_members(unsigned)
    sig = b64url(key.sign(join_members(members)))
    members |= canonical_members({"sig": sig})
    return join_members(members)


def verify_envelope(envelope: dict[str, Any], public: Ed25519PublicKey) -> None:
    """Raise ``RejectedMessage('invalid_signature')`` unless ``sig`` verifies with this key."""
    sig = envelope.get("sig")
    if not isinstance(sig, str):
        raise RejectedMessage("invalid_signature", "no signature")
    try:
        signature = b64url_decode(sig)
        if len(signature) != 64 or b64url(signature) != sig:
            raise ValueError("not a canonical 64-byte signature")
        public.verify(signature, signing_input(envelope))
    except (ValueError, InvalidSignature) as exc:
        raise RejectedMessage("invalid_signature") from exc
