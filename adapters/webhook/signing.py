"""HMAC-SHA256 webhook signatures over the timestamp and the body. Pure.

Header ``X-Tix-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
``HMAC-SHA256(secret, "<t>." + body)``. A receiver refuses a signature older or newer than the
tolerance (stale), one that does not match (forged or tampered), and remembers the accepted
ones for the tolerance window to refuse a replay (the caller keeps that memory).

While a participant's secret is being rolled (``participants.rotate_secret``), the header
carries one ``v1=`` per secret, the new one first (as Stripe does), and a signature by either
secret is accepted: each side can switch to the new secret in its own time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

HEADER: Final = "X-Tix-Signature"
DEFAULT_TOLERANCE: Final = 300


class BadSignature(Exception):
    """The request is not authentic now; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def header(secret: bytes, timestamp: int, body: bytes, *, also: Sequence[bytes] = ()) -> str:
    """The header signed by ``secret`` and, during a roll, by the ``also`` (older) secrets."""
    signatures = "".join(f",v1={digest(s, timestamp, body)}" for s in (secret, *also))
    return f"t={timestamp}{signatures}"


def verify(
    secret: bytes,
    value: str | None,
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
    also: Sequence[bytes] = (),
) -> str:
    """The matching signature (for the replay memory), or ``BadSignature``.

    ``also``: secrets accepted besides ``secret`` (the previous one while it is being rolled).
    """
    if not value or len(value) > 1000:
        raise BadSignature("missing signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isdigit() and len(item) <= 12:
            timestamp = int(item)
        elif key == "v1" and item:
            candidates.append(item.lower())
    if timestamp is None or not candidates:
        raise BadSignature("malformed signature")
    if abs(now - timestamp) > tolerance:
        raise BadSignature("stale signature")
    for accepted in (secret, *also):
        expected = digest(accepted, timestamp, body)
        for candidate in candidates:
            if hmac.compare_digest(candidate, expected):
                return expected
    raise BadSignature("signature does not match")
