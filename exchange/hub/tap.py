"""The audit tap consumer: copies of envelopes and dead letters → metadata rows, then ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.engine import Engine
from sqlmodel import Session

from exchange.amqp import dead_reason_of
from exchange.hub import audit
from exchange.hub.topology import TAPS, declare_tap

log = logging.getLogger(__name__)

PREFETCH = 100
PRUNE_EVERY = 60.0
MAX_BACKOFF = 10.0


class AuditTap:
    """Consumes both tap queues until stopped, reconnecting while the broker is away."""

    def __init__(
        self, amqp_url: str, engine: Engine, *, retention_days: int, max_rows: int
    ) -> None:
        self._url = amqp_url
        self._engine = engine
        self._retention_days = retention_days
        self._max_rows = max_rows
        self._last_prune = 0.0
        self.running = asyncio.Event()

    def _store(self, message: AbstractIncomingMessage, kind: str) -> None:
        reason = dead_reason_of(message.headers) if kind == "dead" else ""
        event = audit.metadata(
            message.body,
            kind=kind,
            routing_key=message.routing_key or "",
            message_id=message.message_id,
            reason=reason,
        )
        with Session(self._engine) as session:
            audit.record(session, event)
            if time.monotonic() - self._last_prune > PRUNE_EVERY:
                self._last_prune = time.monotonic()
                audit.prune(session, retention_days=self._retention_days, max_rows=self._max_rows)
            session.commit()

    async def _consume_once(self) -> None:
        connection = await aio_pika.connect(self._url, heartbeat=10, timeout=10)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            await declare_tap(channel)
            closed = asyncio.Event()
            channel.close_callbacks.add(lambda *_: closed.set())
            connection.close_callbacks.add(lambda *_: closed.set())
            for queue_name, _exchange, kind in TAPS:
                queue = await channel.get_queue(queue_name, ensure=False)

                async def on_message(message: AbstractIncomingMessage, kind: str = kind) -> None:
                    try:
                        self._store(message, kind)
                    except Exception:
                        log.exception("audit tap could not store %s", message.message_id)
                        await message.nack(requeue=True)
                        await asyncio.sleep(1.0)
                        return
                    await message.ack()

                await queue.consume(on_message)
            self.running.set()
            await closed.wait()
        finally:
            self.running.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await connection.close()

    async def run(self) -> None:
        """Consume until cancelled."""
        backoff = 0.5
        while True:
            try:
                await self._consume_once()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit tap: broker unavailable (%r); retrying in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
