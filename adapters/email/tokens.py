"""Reply tokens: the per-delegation secret in the reply address and in our Message-IDs.

A reply address is ``<local>+<token>@<domain>``. The token is the first 15 bytes (120 bits) of
HMAC-SHA256(secret, ``"tix-reply-v1:" + delegation_id``), in lower-case base32 without padding
(24 characters). Base32 survives mail systems that fold the local part to one case; the label
separates this use of the secret from any other. A token only proves "someone who saw a mail of
this delegation"; the sender check (``loops.classify``) proves who.

Outbound Message-IDs carry the same token (``<tix.<token>.<unique>@<domain>>``) so a reply sent to
the wrong address still threads back through ``In-Reply-To``/``References``.

Limits: tokens do not expire; a closed or recalled delegation must be refused by the caller.
Rotating the secret invalidates every reply address in circulation, so ``verify`` accepts the
current secret and any previous ones (``previous_secrets``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

__all__ = [
    "MIN_SECRET_BYTES",
    "TOKEN_LENGTH",
    "make_message_id",
    "make_reply_address",
    "parse_token",
    "token_for",
    "token_from_message_id",
    "verify",
]

MIN_SECRET_BYTES = 16
TOKEN_LENGTH = 24  # 15 bytes of MAC = 120 bits = 24 base32 characters
_MAC_BYTES = 15
_LABEL = b"tix-reply-v1:"
_TOKEN_RE = re.compile(rf"[a-z2-7]{{{TOKEN_LENGTH}}}")
_LOCAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,38}")
_MESSAGE_ID_RE = re.compile(
    rf"<?tix\.([a-z2-7]{{{TOKEN_LENGTH}}})\.[A-Za-z0-9_-]{{1,64}}@([^<>@\s]+)>?"
)


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the reply-token secret must be at least {MIN_SECRET_BYTES} bytes")


def token_for(delegation_id: str, secret: bytes) -> str:
    """The reply token of a delegation."""
    _check_secret(secret)
    mac = hmac.new(secret, _LABEL + delegation_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(mac[:_MAC_BYTES]).decode("ascii").lower()


def make_reply_address(local: str, domain: str, delegation_id: str, secret: bytes) -> str:
    """``<local>+<token>@<domain>`` for one delegation."""
    if not _LOCAL_RE.fullmatch(local):
        raise ValueError(f"unusable local part for a reply address: {local!r}")
    if not domain or "@" in domain or any(c.isspace() for c in domain):
        raise ValueError(f"unusable mail domain: {domain!r}")
    return f"{local}+{token_for(delegation_id, secret)}@{domain.lower()}"


def make_message_id(domain: str, delegation_id: str, secret: bytes, unique: str) -> str:
    """An outbound Message-ID that carries the delegation's token (``unique``: [A-Za-z0-9_-])."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", unique):
        raise ValueError("the unique part of a Message-ID must be 1-64 of [A-Za-z0-9_-]")
    return f"<tix.{token_for(delegation_id, secret)}.{unique}@{domain.lower()}>"


def parse_token(address: str, *, domain: str | None = None) -> str | None:
    """The token of a reply address, or None when the address does not carry one.

    ``domain``, when given, must be the address's domain (case-insensitive).
    """
    local, at, addr_domain = address.strip().strip("<>").rpartition("@")
    if not at or not local:
        return None
    if domain is not None and addr_domain.lower() != domain.lower():
        return None
    base, plus, tail = local.partition("+")
    if not base or not plus:
        return None
    token = tail.lower()
    return token if _TOKEN_RE.fullmatch(token) else None


def token_from_message_id(message_id: str, *, domain: str | None = None) -> str | None:
    """The token inside one of our Message-IDs, or None for anyone else's."""
    match = _MESSAGE_ID_RE.fullmatch(message_id.strip())
    if match is None:
        return None
    if domain is not None and match.group(2).lower() != domain.lower():
        return None
    return match.group(1)


def verify(
    token: str,
    delegation_id: str,
    secret: bytes,
    *,
    previous_secrets: Iterable[bytes] = (),
) -> bool:
    """Whether ``token`` belongs to ``delegation_id`` (constant time per secret)."""
    candidate = token.strip().lower().encode("ascii", "replace")
    ok = False
    for key in (secret, *previous_secrets):
        expected = token_for(delegation_id, key).encode("ascii")
        # Keep comparing after a match so timing does not tell which secret matched.
        ok |= hmac.compare_digest(candidate, expected)
    return ok
