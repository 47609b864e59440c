"""The audit tap's records: envelope metadata (never bodies), per-account counts, retention.

The tap sees every envelope published to ``tix.exchange`` (kind ``sent``) and every message
moved to ``tix.dead`` (kind ``dead``, with the reason). It keeps id, type, from, to, link,
subject, seq, sent_at, size and the time the hub received it. The metadata is what the
envelope claims: the tap checks no signature (the recipient's node does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from exchange.clock import aware, instant, utcnow
from exchange.hub.models import AuditEvent

MAX_PARSE_BYTES = 512 * 1024


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def metadata(
    body: bytes, *, kind: str, routing_key: str, message_id: str | None, reason: str = ""
) -> AuditEvent:
    """The record of one tapped message; a body that is not an envelope still counts."""
    parsed: Any = None
    if len(body) <= MAX_PARSE_BYTES:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
    envelope: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    seq = envelope.get("seq")
    return AuditEvent(
        kind=kind,
        message_id=_text(envelope.get("id"), 64) or (message_id or "")[:64],
        type=_text(envelope.get("type"), 64) or "(not an envelope)",
        from_account=_text(envelope.get("from"), 63),
        to_account=_text(envelope.get("to"), 63) or routing_key[:63],
        link=_text(envelope.get("link"), 64),
        subject=_text(envelope.get("subject"), 200),
        seq=seq if type(seq) is int and 0 <= seq < 2**62 else None,
        sent_at=_text(envelope.get("sent_at"), 40),
        size=len(body),
        reason=reason[:200],
    )


def record(session: Session, event: AuditEvent) -> None:
    session.add(event)


@dataclass(frozen=True)
class AccountTraffic:
    account: str
    sent: int
    received: int
    failed: int


def per_account(session: Session) -> list[AccountTraffic]:
    """Envelopes sent and received and dead letters per account, over the retained window."""
    sent = dict(
        session.exec(
            select(AuditEvent.from_account, func.count())
            .where(AuditEvent.kind == "sent")
            .group_by(col(AuditEvent.from_account))
        ).all()
    )
    received = dict(
        session.exec(
            select(AuditEvent.to_account, func.count())
            .where(AuditEvent.kind == "sent")
            .group_by(col(AuditEvent.to_account))
        ).all()
    )
    failed = dict(
        session.exec(
            select(AuditEvent.to_account, func.count())
            .where(AuditEvent.kind == "dead")
            .group_by(col(AuditEvent.to_account))
        ).all()
    )
    names = sorted(n for n in set(sent) | set(received) | set(failed) if n)
    return [
        AccountTraffic(n, int(sent.get(n, 0)), int(received.get(n, 0)), int(failed.get(n, 0)))
        for n in names
    ]


def events(session: Session, *, account: str | None = None, limit: int = 100) -> list[AuditEvent]:
    statement = select(AuditEvent)
    if account:
        statement = statement.where(
            (AuditEvent.from_account == account) | (AuditEvent.to_account == account)
        )
    statement = statement.order_by(col(AuditEvent.id).desc()).limit(max(1, min(limit, 1000)))
    return list(session.exec(statement).all())


def prune(session: Session, *, retention_days: int, max_rows: int) -> int:
    """Drop records older than the retention window and the oldest past ``max_rows``."""
    cutoff = utcnow() - timedelta(days=retention_days)
    result = session.exec(delete(AuditEvent).where(col(AuditEvent.received_at) < cutoff))
    removed = int(result.rowcount or 0)
    newest = session.exec(select(func.max(AuditEvent.id))).one()
    if newest is not None and newest > max_rows:
        result = session.exec(delete(AuditEvent).where(col(AuditEvent.id) <= newest - max_rows))
        removed += int(result.rowcount or 0)
    return removed


def event_to_public(event: AuditEvent) -> dict[str, object]:
    return {
        "kind": event.kind,
        "id": event.message_id,
        "type": event.type,
        "from": event.from_account,
        "to": event.to_account,
        "link": event.link,
        "subject": event.subject,
        "seq": event.seq,
        "sent_at": event.sent_at,
        "size": event.size,
        "reason": event.reason,
        "received_at": instant(aware(event.received_at)),
    }
