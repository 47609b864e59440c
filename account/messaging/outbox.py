"""Writing envelopes into the outbox, in the caller's transaction (transactional outbox).

A state change and the envelopes it causes are written in one DB transaction; the relay
(``account.messaging.relay``) publishes them after commit. Envelopes are signed here, at write
time, so what leaves is exactly what was committed, whenever the broker comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from account.context import Identity
from account.messaging.models import OutboxMessage
from account.observability import tracing
from exchange.envelopes import seal
from schemas.common import WireModel


def enqueue(
    *,
    session: Session,
    identity: Identity,
    to: str,
    link_id: str,
    message_type: str,
    subject: str,
    seq: int,
    body: WireModel,
    sent_at: datetime | None = None,
) -> OutboxMessage:
    """Sign an envelope from ``identity`` and add it to the outbox (flushed, not committed)."""
    message_id, data = seal(
        key=identity.key,
        sender=identity.account_id,
        to=to,
        message_type=message_type,
        link=link_id,
        subject=subject,
        seq=seq,
        body=body,
        sent_at=sent_at,
    )
    row = OutboxMessage(
        message_id=message_id,
        account_id=identity.account_id,
        to_account=to,
        type=message_type,
        subject=subject,
        body=data,
        traceparent=tracing.for_outbox(),
    )
    session.add(row)
    session.flush()
    return row


def next_seq(session: Session, table: Any, row_id: Any) -> int:
    """Take the next outgoing ``seq`` of a row atomically (``UPDATE … RETURNING``).

    The row stays locked until the transaction ends, so two concurrent senders on the same
    subject can never take the same number (PostgreSQL); SQLite serialises writers anyway.
    """
    statement = (
        update(table)
        .where(table.id == row_id)
        .values(seq_out=table.seq_out + 1)
        .returning(table.seq_out)
    )
    return int(session.execute(statement).scalar_one())


def enqueue_next(
    *,
    session: Session,
    identity: Identity,
    counter: Any,
    row_id: Any,
    to: str,
    link_id: str,
    message_type: str,
    subject: str,
    body: WireModel,
    sent_at: datetime | None = None,
) -> OutboxMessage:
    """Take the next ``seq`` of ``counter``'s row (a link or a delegation), then enqueue."""
    seq = next_seq(session, counter, row_id)
    return enqueue(
        session=session,
        identity=identity,
        to=to,
        link_id=link_id,
        message_type=message_type,
        subject=subject,
        seq=seq,
        body=body,
        sent_at=sent_at,
    )
