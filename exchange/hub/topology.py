"""The audit tap's queues: the one other place that declares broker topology.

``exchange.amqp`` declares the exchanges and the accounts' queues; this module, which it
points to, declares only the hub's two tap queues: ``tix.hub.audit`` bound to ``tix.exchange``
with ``#`` (a copy of every envelope) and ``tix.hub.audit.dead`` bound to ``tix.dead`` with
``#`` (a copy of every dead letter). Both are bounded (``x-max-length``, dropping the oldest),
so a hub that is down never fills the broker.

Trade-off: with the tap bound, every envelope is routable, so a publish to an account that has
no inbox is no longer returned to the sender as unroutable; the tap records it instead
(docs/scaling.md).
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractChannel, ExchangeType

from exchange.transport import DEAD_EXCHANGE_NAME, EXCHANGE_NAME

AUDIT_QUEUE = "tix.hub.audit"
AUDIT_DEAD_QUEUE = "tix.hub.audit.dead"
TAP_MAX_LENGTH = 100_000
DECLARE_TIMEOUT = 30.0

TAPS = ((AUDIT_QUEUE, EXCHANGE_NAME, "sent"), (AUDIT_DEAD_QUEUE, DEAD_EXCHANGE_NAME, "dead"))


async def declare_tap(channel: AbstractChannel) -> None:
    """Declare (idempotently) both exchanges and both tap queues with their ``#`` bindings."""
    async with asyncio.timeout(DECLARE_TIMEOUT):
        for queue_name, exchange_name, _kind in TAPS:
            exchange = await channel.declare_exchange(
                exchange_name, ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                queue_name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-max-length": TAP_MAX_LENGTH,
                    "x-overflow": "drop-head",
                },
            )
            await queue.bind(exchange, routing_key="#")
