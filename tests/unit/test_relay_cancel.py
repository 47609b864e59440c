"""Regression (found by the fault suite, broker restart): cancelling the outbox relay must stop
it even when its wake-up fires in the same instant.

On Python 3.11 ``asyncio.wait_for`` returns the inner result and drops the cancellation when
both happen together. The relay then ran on, so the node's supervisor waited for it forever after
the broker closed the connection: no reconnect, the inbox without a consumer, /readyz still "up".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from account.messaging.relay import OutboxRelay
from exchange.inprocess import InProcessBroker, InProcessTransport
from tests.support.db import node_engine


async def test_a_cancel_that_meets_a_wake_up_still_stops_the_relay(
    tmp_path: Path, db_backend: str
) -> None:
    with node_engine(db_backend, tmp_path) as engine:
        relay = OutboxRelay(engine, InProcessTransport(InProcessBroker()), poll_seconds=30)
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.2)  # idle, waiting for a wake-up
        relay._wake.set()
        task.cancel()  # in the same step as the wake-up
        done, _ = await asyncio.wait({task}, timeout=3)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=3)
    assert task in done, "the relay swallowed its cancellation and kept running"
    assert task.cancelled()
