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


def shovel_queue(remote: str) -> str:
    """The queue that holds envelopes waiting for the shovel to broker ``remote``."""
    return f"tix.shovel.{remote}"


async def declare_shovel_source(
    channel: AbstractChannel, remote: str, routing_keys: list[str]
) -> str:
    """Declare the durable queue a shovel drains towards ``remote``, bound to ``tix.exchange``
    with the account ids that live behind ``remote`` (docs/scaling.md); return its name.

    It exists before the shovel does, so a node's mandatory publish to an account on the other
    broker is routed (and kept) even while the shovel or the other broker is down.
    """
    name = shovel_queue(remote)
    async with asyncio.timeout(DECLARE_TIMEOUT):
        exchange = await channel.declare_exchange(EXCHANGE_NAME, ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for key in routing_keys:
            if not key or any(c in key for c in "*#. \t\r\n"):
                raise ValueError(f"not an account id: {key!r}")
            await queue.bind(exchange, routing_key=key)
    return name


def shovel_definition(*, src_uri: str, src_queue: str, dest_uri: str) -> dict[str, object]:
    """A dynamic shovel (``rabbitmqctl set_parameter shovel NAME JSON``) that moves the queue's
    envelopes to the other broker's ``tix.exchange`` under their own routing key, acking each
    at the source only after the destination confirmed it.

    Mind the URIs: ``amqp://u:p@host:5672/`` names the *empty* vhost for the shovel (the
    Erlang client reads the path literally); write ``amqp://u:p@host:5672`` or ``…/%2F``."""
    return {
        "src-protocol": "amqp091",
        "src-uri": src_uri,
        "src-queue": src_queue,
        "dest-protocol": "amqp091",
        "dest-uri": dest_uri,
        "dest-exchange": EXCHANGE_NAME,
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": 1,
    }
