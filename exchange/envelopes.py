"""Sealing and opening envelopes: the stateless half of the receiver checks.

``seal`` builds, signs and serialises an envelope to its canonical bytes, which are exactly the
bytes that travel. ``open_envelope`` performs the checks that need no state, in the order of
ARCHITECTURE §5: size limit (before parsing), strict JSON (no NUL in strings either), version,
type and schema. The checks that need the node's tables (recipient hosted, link active, sender
is the counterpart, ``kid`` pinned, signature, clock skew, dedupe, ``seq``) run in
``account.messaging.inbox``, which calls ``check_signature`` and ``check_skew`` from here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from exchange.canonical import MAX_MESSAGE_BYTES, parse_strict
from exchange.clock import instant, parse_instant, utcnow
from exchange.errors import RejectedMessage
from exchange.signing import sign_and_serialize, verify_envelope
from schemas import ENVELOPE_VERSION, Envelope, body_model
from schemas.common import WireModel
from schemas.envelope import BODY_MODELS


@dataclass(frozen=True)
class Opened:
    """An envelope that passed the stateless checks: the model, its raw dict and its body."""

    envelope: Envelope
    raw: dict[str, Any]
    body: WireModel

    @property
    def sender(self) -> str:
        return self.envelope.from_


def seal(
    *,
    key: Ed25519PrivateKey,
    sender: str,
    to: str,
    message_type: str,
    link: str,
    subject: str,
    seq: int,
    body: WireModel,
    sent_at: datetime | None = None,
    message_id: str | None = None,
) -> tuple[str, bytes]:
    """Sign an envelope and return ``(message id, canonical bytes)``."""
    if BODY_MODELS[message_type] is not type(body):
        raise TypeError(f"{message_type} takes a {BODY_MODELS[message_type].__name__} body")
    msg_id = message_id or str(uuid.uuid4())
    envelope = {
        "v": ENVELOPE_VERSION,
        "id": msg_id,
        "type": message_type,
        "from": sender,
        "to": to,
        "link": link,
        "subject": subject,
        "seq": seq,
        "sent_at": instant(sent_at or utcnow()),
        "body": body.model_dump(mode="json"),
    }
    data = sign_and_serialize(envelope, key)  # == canonical(sign_envelope(envelope, key))
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"envelope of {len(data)} bytes is over the {MAX_MESSAGE_BYTES} cap")
    return msg_id, data


def _has_nul(value: Any) -> bool:
    """Whether any string (key or value) in a parsed JSON value holds a NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def open_envelope(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Opened:
    """Run the stateless receiver checks; raise ``RejectedMessage`` with a stable reason."""
    value = parse_strict(data, max_bytes=max_bytes)
    if _has_nul(value):
        # Canonical JSON allows it, but PostgreSQL cannot store it: the message would fail at
        # commit and be retried to the delivery limit instead of rejected (tests/hostile).
        raise RejectedMessage("malformed", "NUL character in a string")
    if not isinstance(value, dict):
        raise RejectedMessage("malformed", "an envelope is a JSON object")
    version = value.get("v")
    if type(version) is not int or version != ENVELOPE_VERSION:  # True == 1 in Python
        raise RejectedMessage("unsupported_version", f"v={str(version)[:20]}")
    message_type = value.get("type")
    if not isinstance(message_type, str) or message_type not in BODY_MODELS:
        raise RejectedMessage("unknown_type", str(message_type)[:60])
    try:
        envelope = Envelope.model_validate(value)
        body = body_model(message_type).model_validate(envelope.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RejectedMessage("schema", f"{where}: {first['msg']}"[:300]) from exc
    return Opened(envelope=envelope, raw=value, body=body)


def check_signature(opened: Opened, public: Ed25519PublicKey) -> None:
    verify_envelope(opened.raw, public)


def check_skew(opened: Opened, *, max_skew: timedelta, now: datetime | None = None) -> None:
    """Refuse envelopes claiming to be sent further in the future than the allowed skew."""
    sent = parse_instant(opened.envelope.sent_at)
    if sent - (now or utcnow()) > max_skew:
        raise RejectedMessage("future_sent_at", opened.envelope.sent_at)
