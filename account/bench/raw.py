"""The raw baseline: aio-pika alone, persistent messages, publisher confirms, manual acks.

Publishes ``count`` messages of ``size`` bytes (the Tix envelope's typical size) to a
run-unique quorum queue on the same broker, in the relay's style (mandatory, persistent,
``on_return_raises``; each publish awaits its confirm when ``window`` is 1, else up to
``window`` confirms are outstanding), while a consumer on its own channel acks each delivery by
hand. The rate is messages per second from the first publish to the last ack. The queue is
deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, DeliveryMode

PREFETCH = 64


@dataclass(frozen=True)
class RawResult:
    messages: int
    size: int
    window: int
    seconds: float
    messages_per_s: float


async def raw_baseline(
    url: str,
    *,
    count: int,
    size: int,
    window: int = 1,
    within: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> RawResult:
    """Publish and consume ``count`` messages; return the rate (bounded by ``within`` seconds)."""
    count = max(1, count)
    window = max(1, window)
    body = (b'{"pad":"' + b"x" * max(0, size - 10) + b'"}')[: max(size, 10)]
    queue_name = f"tix.bench.raw.{secrets.token_hex(4)}"
    connection = await aio_pika.connect(url, timeout=10)
    try:
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        queue = await consume_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        acked = 0
        done = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal acked
            await message.ack()
            acked += 1
            if progress is not None:
                progress(1)
            if acked >= count:
                done.set()

        await queue.consume(on_message)
        exchange = publish_channel.default_exchange
        slots = asyncio.Semaphore(window)

        async def publish_one(i: int) -> None:
            message = aio_pika.Message(
                body,
                headers={"x-tix-type": "delegation.offer", "x-tix-from": "bench-raw"},
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                message_id=str(uuid.UUID(int=i)),
            )
            try:
                await exchange.publish(message, routing_key=queue_name, mandatory=True)
            finally:
                slots.release()

        started = time.perf_counter()
        async with asyncio.timeout(within):
            pending: set[asyncio.Task[None]] = set()
            for i in range(count):
                await slots.acquire()
                if window == 1:
                    await publish_one(i)
                    continue
                task = asyncio.create_task(publish_one(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
            await done.wait()
        seconds = time.perf_counter() - started
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await consume_channel.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                cleanup = await connection.channel()
                await cleanup.queue_delete(queue_name)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await connection.close()
    return RawResult(count, len(body), window, seconds, count / seconds)
