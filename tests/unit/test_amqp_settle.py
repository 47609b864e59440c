"""Regression (found by the fault suite, broker-outage): an ack whose connection died under it
must not hang the consumer forever; it times out, so the consumer counts as lost and the node's
supervisor reconnects instead of leaving the inbox without a consumer while reporting "up"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exchange import amqp
from exchange.amqp import AmqpTransport
from exchange.transport import Delivery, Outcome


class HangingMessage:
    """A delivery whose settle frames never drain (aiormq's writer is gone)."""

    body = b"{}"
    message_id = "m-1"
    redelivered = False
    headers: dict[str, Any] = {}

    async def _forever(self, **_: Any) -> None:
        await asyncio.Event().wait()

    ack = _forever
    nack = _forever
    reject = _forever


@pytest.mark.parametrize("outcome", [Outcome.ack(), Outcome.retry("DB locked")])
async def test_a_settle_that_never_completes_times_out_as_a_lost_consumer(
    monkeypatch: pytest.MonkeyPatch, outcome: Outcome
) -> None:
    monkeypatch.setattr(amqp, "SETTLE_TIMEOUT", 0.2, raising=False)
    transport = AmqpTransport("amqp://guest:guest@127.0.0.1:1/", retry_backoff=0.0)

    async def handler(_delivery: Delivery) -> Outcome:
        return outcome

    task = asyncio.create_task(
        transport._process("acme", HangingMessage(), handler)  # type: ignore[arg-type]
    )
    done, _ = await asyncio.wait({task}, timeout=5)  # before the fix it hung here
    if not done:
        task.cancel()
    assert task in done, "the settle hung"
    assert isinstance(task.exception(), amqp._CONSUMER_LOST)
