"""The outbox relay: publishes committed envelopes in order, marks them sent on confirm.

Each recipient's rows leave in ``id`` order, one at a time (the next only after the broker
confirmed the one before); different recipients are published to side by side. If a row cannot
go (its recipient has no inbox yet: ``Unroutable``; or the broker refused it), later rows to the
same recipient wait behind it, across batches, so a partner never sees a status before the
offer it belongs to, while other recipients are not held up. A drain marks every confirmed row
``sent`` in one transaction after its publishes; a crash between the confirms and that commit
republishes them, and the receiver's inbox drops the duplicates. While the broker is away the
relay raises ``TransportUnavailable`` to the node's supervisor, which reconnects with backoff;
nothing is lost, because the rows stay ``pending`` in the database. A row that stays
unroutable for ``GIVE_UP_AFTER`` is marked ``failed`` for the operator
(``GET /api/v1/admin/outbox``). Rows another transaction marked ``superseded`` while they were
in flight are left as they are (only ``pending`` rows are marked ``sent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from account.db import reader_for
from account.messaging.models import OutboxMessage
from account.observability import tracing
from exchange.clock import aware, utcnow
from exchange.errors import TransportError, TransportUnavailable, Unroutable
from exchange.faults import crash_point
from exchange.transport import Transport

log = logging.getLogger("tix.relay")

BATCH = 200
GIVE_UP_AFTER = timedelta(hours=24)
# Recipients whose rows are published at the same time (each still one row at a time).
MAX_RECIPIENTS_IN_FLIGHT = 16


@dataclass(frozen=True)
class _Row:
    """What the relay needs of one pending outbox row (read without the ORM's bookkeeping)."""

    id: int
    message_id: str
    to_account: str
    type: str
    account_id: str
    body: bytes
    traceparent: str | None


# Built once: the relay runs these on every drain, and building SQLAlchemy statements costs
# more CPU than SQLite spends running them (about 1 ms per drain, measured).
_OUTBOX = cast(Table, OutboxMessage.__table__)  # type: ignore[attr-defined]
_WAITING = (
    sa_select(_OUTBOX.c.to_account)
    .where(
        # A row backing off, or given up on (``failed``: an operator must act), holds every
        # later row to the same recipient.
        or_(
            and_(_OUTBOX.c.state == "pending", _OUTBOX.c.next_try_at > bindparam("now")),
            _OUTBOX.c.state == "failed",
        )
    )
    .distinct()
)
_DUE = (
    sa_select(
        _OUTBOX.c.id,
        _OUTBOX.c.message_id,
        _OUTBOX.c.to_account,
        _OUTBOX.c.type,
        _OUTBOX.c.account_id,
        _OUTBOX.c.body,
        _OUTBOX.c.traceparent,
    )
    .where(_OUTBOX.c.state == "pending", _OUTBOX.c.to_account.not_in(_WAITING))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
)
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _OUTBOX.c.state == "pending")
    .values(state="sent", sent_at=bindparam("now"), tries=_OUTBOX.c.tries + 1, last_error=None)
)
# Only a row still pending is retried: one superseded meanwhile (outbox.supersede_pending) is
# left as it is, so it can neither be marked failed nor hold its recipient.
_RETRY_OF = sa_select(_OUTBOX.c.tries, _OUTBOX.c.created_at).where(
    _OUTBOX.c.id == bindparam("id"), _OUTBOX.c.state == "pending"
)


def _due(engine: Engine, limit: int) -> list[_Row]:
    """Pending rows in order, leaving out every recipient whose oldest row is backing off.

    Only a recipient's oldest pending row is ever tried, so a row in backoff is always the
    oldest of its recipient: excluding the recipient keeps its later rows behind it. Both
    parts read through the ``state`` index (pending and failed rows only), so the cost follows
    the rows waiting, not the outbox's history of sent rows.
    """
    with engine.connect() as conn:
        result = conn.execute(_DUE, {"now": utcnow(), "limit": limit})
        return [
            _Row(int(row_id), message_id, to, kind, sender, bytes(body), traceparent)
            for row_id, message_id, to, kind, sender, body, traceparent in result
        ]


def _headers(row: _Row) -> dict[str, str]:
    headers = {"x-tix-type": row.type, "x-tix-from": row.account_id}
    if row.traceparent:
        headers[tracing.HEADER] = row.traceparent
    return headers


def _settle(
    engine: Engine, sent: list[int], retries: list[tuple[int, str]], max_backoff: float
) -> None:
    """Mark every confirmed row sent, and every refused one for retry, in ONE transaction.

    A crash before this commit leaves the confirmed rows ``pending``: they are published again
    and the receiver's inbox drops the duplicates (at-least-once, as before).
    """
    if not sent and not retries:
        return
    now = utcnow()
    with engine.begin() as conn:
        for chunk in _chunks(sent, 500):
            conn.execute(_MARK_SENT, {"ids": chunk, "now": now})
        for row_id, error in retries:
            found = conn.execute(_RETRY_OF, {"id": row_id}).first()
            if found is None:
                continue
            tries, created_at = found[0] + 1, found[1]
            values: dict[str, object] = {"tries": tries, "last_error": error[:500]}
            if now - aware(created_at) > GIVE_UP_AFTER:
                values["state"] = "failed"
            else:
                delay = min(max_backoff, 0.5 * 2 ** min(tries, 16))
                values["next_try_at"] = now + timedelta(seconds=delay)
            conn.execute(update(_OUTBOX).where(_OUTBOX.c.id == row_id).values(**values))


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class OutboxRelay:
    """Drains the outbox through a transport; woken after each commit, polls as a fallback.

    One drain reads up to ``BATCH`` due rows (one query), publishes them, then settles them
    (one transaction for every row of the batch). Recipients are published to concurrently,
    each by its own task; one recipient's rows go strictly one at a time, each waiting for its
    confirm before the next is published. A nack or a returned message therefore can never
    leave a later row of the same recipient in its inbox ahead of it (RabbitMQ does not say
    which messages a nack covers), so per-recipient order holds exactly as with one publish at
    a time; a failure stops that recipient's rows for this drain and leaves the others going.
    """

    def __init__(
        self,
        engine: Engine,
        transport: Transport,
        *,
        poll_seconds: float = 0.5,
        max_backoff: float = 30.0,
        max_recipients_in_flight: int = MAX_RECIPIENTS_IN_FLIGHT,
    ) -> None:
        if max_recipients_in_flight < 1:
            raise ValueError("max_recipients_in_flight must be at least 1")
        self._engine = engine
        # Reads the batch without waiting for the node's write connection (SQLite).
        self._reader = reader_for(engine)
        self._transport = transport
        self._poll = poll_seconds
        self._max_backoff = max_backoff
        self._in_flight = max_recipients_in_flight
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def wake(self) -> None:
        """Ask for a drain now; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Drain forever; raises ``TransportUnavailable`` when the broker goes away."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            moved = await self.drain_once()
            if moved == BATCH:
                continue
            # Not asyncio.wait_for: on Python 3.11 it drops a cancel that meets the wake-up,
            # and the supervisor then waits for this task forever (tests/unit/test_relay_cancel.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def drain_once(self) -> int:
        """Publish what is due; return how many rows were looked at."""
        rows = await asyncio.to_thread(_due, self._reader, BATCH)
        if not rows:
            return 0
        by_recipient: dict[str, list[_Row]] = {}
        for row in rows:
            by_recipient.setdefault(row.to_account, []).append(row)
        sent: list[int] = []
        retries: list[tuple[int, str]] = []
        slots = asyncio.Semaphore(self._in_flight)

        async def one_recipient(queue: list[_Row]) -> None:
            async with slots:
                for row in queue:
                    error = await self._publish(row)
                    if error is not None:
                        # Later rows to this recipient wait behind it (next drain, or after
                        # its backoff): a partner never sees a status before its offer.
                        retries.append((row.id, error))
                        return
                    sent.append(row.id)

        results = await asyncio.gather(
            *(one_recipient(queue) for queue in by_recipient.values()), return_exceptions=True
        )
        if sent:
            crash_point("after_confirm_before_mark_sent")
        # Settle what is known even when the broker went away under another recipient's task:
        # a confirmed row left pending would only be published (and dropped) again.
        await asyncio.to_thread(_settle, self._engine, sent, retries, self._max_backoff)
        self.published += len(sent)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(rows)

    async def _publish(self, row: _Row) -> str | None:
        """Publish one row and wait for its confirm; the retry reason if it could not go."""
        crash_point("after_commit_before_publish")
        try:
            await self._transport.publish(
                to=row.to_account,
                body=row.body,
                message_id=row.message_id,
                headers=_headers(row),
            )
        except TransportUnavailable:
            raise
        except Unroutable:
            log.warning(
                "no inbox for %s; message %s waits",
                row.to_account,
                row.message_id,
                extra={"message_id": row.message_id, "message_type": row.type},
            )
            return "unroutable"
        except TransportError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None


def pending_count(engine: Engine) -> int:
    from sqlalchemy import func

    with Session(engine) as session:
        statement = select(func.count()).where(OutboxMessage.state == "pending")
        return int(session.exec(statement).one())


def retry_failed(engine: Engine) -> int:
    """Put every ``failed`` row back to ``pending`` for the relay to try now; return how many."""
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.state == "failed")).all()
        for row in rows:
            row.state = "pending"
            row.next_try_at = utcnow()
            session.add(row)
        session.commit()
        return len(rows)
