"""The outbox relay: publishes committed envelopes in order, marks them sent on confirm.

Rows leave in ``id`` order, one destination at a time: if a row cannot go (its recipient has
no inbox yet: ``Unroutable``), later rows to the same recipient wait behind it, across batches,
so a partner never sees a status before the offer it belongs to, while other recipients are
not held up. A row is
marked ``sent`` only after the broker confirmed it; a crash between the confirm and the mark
republishes it, and the receiver's inbox drops the duplicate. While the broker is away the relay
raises ``TransportUnavailable`` to the node's supervisor, which reconnects with backoff; nothing
is lost, because the rows stay ``pending`` in the database. A row that stays unroutable for
``GIVE_UP_AFTER`` is marked ``failed`` for the operator (``GET /api/v1/admin/outbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.messaging.models import OutboxMessage
from account.observability import tracing
from exchange.clock import aware, utcnow
from exchange.errors import TransportError, TransportUnavailable, Unroutable
from exchange.faults import crash_point
from exchange.transport import Transport

log = logging.getLogger("tix.relay")

BATCH = 200
GIVE_UP_AFTER = timedelta(hours=24)


def _due(engine: Engine, limit: int) -> list[OutboxMessage]:
    """Pending rows in order, leaving out every recipient whose oldest row is backing off.

    Only a recipient's oldest pending row is ever tried, so a row in backoff is always the
    oldest of its recipient: excluding the recipient keeps its later rows behind it.
    """
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        waiting = (
            select(OutboxMessage.to_account)
            .where(
                # A row backing off, or given up on (``failed``: an operator must act), holds
                # every later row to the same recipient.
                or_(
                    and_(
                        col(OutboxMessage.state) == "pending",
                        col(OutboxMessage.next_try_at) > now,
                    ),
                    col(OutboxMessage.state) == "failed",
                )
            )
            .distinct()
        )
        statement = (
            select(OutboxMessage)
            .where(
                OutboxMessage.state == "pending",
                col(OutboxMessage.to_account).not_in(waiting),
            )
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        )
        return list(session.exec(statement).all())


def _headers(row: OutboxMessage) -> dict[str, str]:
    headers = {"x-tix-type": row.type, "x-tix-from": row.account_id}
    if row.traceparent:
        headers[tracing.HEADER] = row.traceparent
    return headers


def _mark_sent(engine: Engine, row_id: int) -> None:
    with Session(engine) as session:
        row = session.get(OutboxMessage, row_id)
        if row is not None:
            row.state = "sent"
            row.sent_at = utcnow()
            row.tries += 1
            row.last_error = None
            session.add(row)
            session.commit()


def _mark_retry(engine: Engine, row_id: int, error: str, max_backoff: float) -> None:
    with Session(engine) as session:
        row = session.get(OutboxMessage, row_id)
        if row is None:
            return
        row.tries += 1
        row.last_error = error[:500]
        now = utcnow()
        if now - aware(row.created_at) > GIVE_UP_AFTER:
            row.state = "failed"
        else:
            delay = min(max_backoff, 0.5 * 2 ** min(row.tries, 16))
            row.next_try_at = now + timedelta(seconds=delay)
        session.add(row)
        session.commit()


class OutboxRelay:
    """Drains the outbox through a transport; woken after each commit, polls as a fallback."""

    def __init__(
        self,
        engine: Engine,
        transport: Transport,
        *,
        poll_seconds: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self._engine = engine
        self._transport = transport
        self._poll = poll_seconds
        self._max_backoff = max_backoff
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
        rows = await asyncio.to_thread(_due, self._engine, BATCH)
        blocked: set[str] = set()
        for row in rows:
            assert row.id is not None
            if row.to_account in blocked:
                continue
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
                blocked.add(row.to_account)
                await asyncio.to_thread(
                    _mark_retry, self._engine, row.id, "unroutable", self._max_backoff
                )
                continue
            except TransportError as exc:
                blocked.add(row.to_account)
                await asyncio.to_thread(
                    _mark_retry,
                    self._engine,
                    row.id,
                    f"{type(exc).__name__}: {exc}",
                    self._max_backoff,
                )
                continue
            crash_point("after_confirm_before_mark_sent")
            await asyncio.to_thread(_mark_sent, self._engine, row.id)
            self.published += 1
        return len(rows)


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
