"""Writing envelopes into the outbox, in the caller's transaction (transactional outbox).

A state change and the envelopes it causes are written in one DB transaction; the relay
(``account.messaging.relay``) publishes them after commit. Envelopes are signed here, at write
time, so what leaves is exactly what was committed, whenever the broker comes back.

**Superseding** (``supersede_pending``): a stateful envelope carries the sender's whole state
about its subject (ARCHITECTURE §5), so when a newer one is written, an older one to the same
recipient about the same subject that has not left yet says nothing the newer one does not.
It is marked ``superseded`` in the writing transaction and the relay never publishes it. Only
rows at the tail of that (recipient, subject) are superseded: a row with anything else about
the subject after it (a comment, an SLA event, an accept) stays, so the recipient still applies
every message in the order it was written, minus intermediate states. A superseded row has
``tries == 0`` (a row the relay already failed to deliver keeps its place and its backoff).

Safe against the relay reading the same rows concurrently: the relay reads a batch, publishes
it, then marks rows ``sent`` only where they are still ``pending``. If it read the old row
before the superseding transaction committed, the old row goes out anyway (and stays
``superseded`` in the table) and the newer one follows it to the same recipient; the receiver
applies both in ``seq`` order, or drops the older as stale. Either way the recipient ends in the
newer state, and nothing that was not superseded is lost. A crash before the commit changes
nothing (the old row stays ``pending``); after it, the newer row is committed ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlmodel import Session

from account.context import Identity
from account.messaging.models import OutboxMessage
from account.observability import tracing
from exchange.clock import utcnow
from exchange.envelopes import seal
from schemas.common import WireModel


@dataclass(frozen=True)
class Enqueued:
    """The outbox row ``enqueue`` wrote: its row id and the envelope's message id."""

    id: int
    message_id: str


# One Core ``INSERT`` per envelope, built once: no ORM object and no unit of work for a row
# nothing reads back in the writing transaction (but the superseding check, which reads the
# table and so sees it). It runs at once on the caller's connection and transaction.
_OUTBOX = cast(Table, OutboxMessage.__table__)  # type: ignore[attr-defined]
_INSERT = _OUTBOX.insert()


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
) -> Enqueued:
    """Sign an envelope from ``identity`` and write it to the outbox in the caller's transaction
    (written now, committed with the caller)."""
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
    now = utcnow()
    result = session.connection().execute(
        _INSERT,
        {
            "message_id": message_id,
            "account_id": identity.account_id,
            "to_account": to,
            "type": message_type,
            "subject": subject,
            "body": data,
            "state": "pending",
            "tries": 0,
            "next_try_at": now,
            "last_error": None,
            "created_at": now,
            "sent_at": None,
            "traceparent": tracing.for_outbox(),
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return Enqueued(id=int(key[0]), message_id=message_id)


SUPERSEDED = "superseded"


def supersede_pending(
    *, session: Session, account_id: str, to: str, subject: str, message_type: str
) -> int:
    """Mark superseded the unsent ``message_type`` rows at the tail of (``to``, ``subject``).

    Call it just before enqueueing a newer envelope of the same stateful type; returns how
    many rows it superseded (see the module docstring for why this is safe).
    """
    if any(isinstance(obj, OutboxMessage) for obj in session.new):
        session.flush()  # rows added as ORM objects count too (``enqueue`` writes at once)
    with session.no_autoflush:
        return _supersede(session, account_id, to, subject, message_type)


# Built once (the statements and their cache keys), run on the session's connection.
_PENDING_TAIL = (
    select(_OUTBOX.c.id, _OUTBOX.c.type, _OUTBOX.c.tries)
    .where(
        _OUTBOX.c.state == "pending",
        # ``|| ''``: read through the ``state`` index (the few pending rows). Without it
        # SQLite, which keeps no statistics, picked the ``to_account`` index: every row
        # ever sent to the upstream, 7 % of a busy node's CPU in tix bench and growing
        # with its history. PostgreSQL's statistics choose the ``state`` index anyway.
        _OUTBOX.c.account_id.concat("") == bindparam("account_id"),
        _OUTBOX.c.to_account.concat("") == bindparam("to"),
        _OUTBOX.c.subject == bindparam("subject"),
    )
    .order_by(_OUTBOX.c.id.desc())
)
_MARK_SUPERSEDED = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
        _OUTBOX.c.state == "pending",
        _OUTBOX.c.tries == 0,
    )
    .values(state=SUPERSEDED)
)


def _supersede(session: Session, account_id: str, to: str, subject: str, message_type: str) -> int:
    connection = session.connection()
    rows = connection.execute(
        _PENDING_TAIL, {"account_id": account_id, "to": to, "subject": subject}
    ).all()
    tail = []
    for row_id, kind, tries in rows:
        if kind != message_type or tries:
            break
        tail.append(row_id)
    if not tail:
        return 0
    result = connection.execute(_MARK_SUPERSEDED, {"ids": tail})
    return int(result.rowcount or 0)


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
    supersede: bool = False,
) -> Enqueued:
    """Take the next ``seq`` of ``counter``'s row (a link or a delegation), then enqueue.

    ``supersede``: the body is the whole state of the subject, so unsent envelopes of the same
    type at the tail of (``to``, ``subject``) are superseded (``supersede_pending``).
    """
    if supersede:
        supersede_pending(
            session=session,
            account_id=identity.account_id,
            to=to,
            subject=subject,
            message_type=message_type,
        )
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
