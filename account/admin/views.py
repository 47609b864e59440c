"""Admin endpoints: rejected inbound messages (the local dead-letter record) and the outbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import func
from sqlmodel import col, select

from account.deps import AdminUser, ContextDep, SessionDep
from account.messaging import relay
from account.messaging.models import OutboxMessage, RejectedInbound
from exchange.clock import instant

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/rejected")
def rejected(
    ctx: ContextDep,
    session: SessionDep,
    user: AdminUser,
    reason: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,  # fits the database's integer
) -> dict[str, Any]:
    statement = select(RejectedInbound)
    if reason:
        statement = statement.where(RejectedInbound.reason == reason)
    total = session.exec(select(func.count()).select_from(statement.subquery())).one()
    rows = session.exec(
        statement.order_by(col(RejectedInbound.id).desc()).limit(limit).offset(offset)
    ).all()
    items = [
        {
            "id": r.id,
            "received_at": instant(r.received_at),
            "reason": r.reason,
            "detail": r.detail,
            "message_id": r.message_id,
            "from": r.from_account,
            "to": r.account_id,
            "type": r.type,
            "size": r.size,
        }
        for r in rows
    ]
    return {"items": items, "total": int(total)}


@router.get("/outbox")
def outbox(
    ctx: ContextDep,
    session: SessionDep,
    user: AdminUser,
    state: Annotated[str | None, Query(max_length=10)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    statement = select(OutboxMessage)
    if state:
        statement = statement.where(OutboxMessage.state == state)
    rows = session.exec(statement.order_by(col(OutboxMessage.id).desc()).limit(limit)).all()
    counts = dict(
        session.exec(
            select(OutboxMessage.state, func.count()).group_by(col(OutboxMessage.state))
        ).all()
    )
    items = [
        {
            "id": r.id,
            "message_id": r.message_id,
            "to": r.to_account,
            "type": r.type,
            "state": r.state,
            "tries": r.tries,
            "last_error": r.last_error,
            "created_at": instant(r.created_at),
            "sent_at": instant(r.sent_at) if r.sent_at else None,
        }
        for r in rows
    ]
    return {"items": items, "counts": counts, "total": sum(counts.values())}


@router.post("/outbox/retry")
def retry_outbox(ctx: ContextDep, session: SessionDep, user: AdminUser) -> dict[str, int]:
    """Try every given-up (``failed``) outbox row again, in order."""
    # The request's session (it loaded the admin) holds SQLite's one pooled connection; give
    # it back before the relay opens its own, or this waits out the pool timeout and fails.
    session.close()
    count = relay.retry_failed(ctx.engine)
    ctx.wake_relay()
    return {"retried": count}
