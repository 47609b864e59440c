"""The private-broker harness, and the AMQP transport across a broker ``stop_app``/``start_app``."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exchange.amqp import AmqpTransport
from exchange.errors import TransportError, TransportUnavailable
from exchange.transport import Delivery, Outcome
from tests.support.private_broker import (
    MACHINE_PORT,
    PrivateBroker,
    machine_amqp_url,
    port_open,
)

WAIT = 60.0

pytestmark = pytest.mark.needs_rabbitmq


@pytest.fixture
async def private_transport(private_broker: PrivateBroker) -> AsyncIterator[AmqpTransport]:
    transport = AmqpTransport(private_broker.url, heartbeat=2, retry_backoff=0.01)
    await transport.connect()
    try:
        yield transport
    finally:
        await transport.close()


async def next_delivery(transport: AmqpTransport, account: str) -> Delivery:
    """Consume the next delivery of ``account`` (acked) within ``WAIT`` seconds."""
    got: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()

    async def handler(delivery: Delivery) -> Outcome:
        if not got.done():
            got.set_result(delivery)
            return Outcome.ack()
        await asyncio.sleep(WAIT * 10)  # later deliveries stay in the inbox
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(account, handler))
    try:
        waiting: set[asyncio.Future[Any]] = {got, task}
        done, _ = await asyncio.wait(waiting, timeout=WAIT, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()
        assert got in done, "no delivery within the timeout"
        await asyncio.sleep(0.2)  # let the ack reach the broker
        return got.result()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def connect_within(transport: AmqpTransport, seconds: float) -> None:
    """Reconnect the way the supervisor does: retry ``connect()`` until it works."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            await transport.connect()
            return
        except TransportUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_a_message_published_before_stop_app_is_consumable_after_start_app(
    private_broker: PrivateBroker, private_transport: AmqpTransport
) -> None:
    assert private_broker.start_seconds is not None
    print(f"\nprivate broker start took {private_broker.start_seconds:.1f} s")
    machine_up_before = port_open(MACHINE_PORT)
    transport = private_transport
    account = f"t-{uuid.uuid4().hex[:12]}"
    await transport.declare_inbox(account)

    await transport.publish(to=account, body=b"hello", message_id="m-1", headers={"k": "v"})
    first = await next_delivery(transport, account)
    assert (first.body, first.message_id, dict(first.headers)) == (b"hello", "m-1", {"k": "v"})

    await transport.publish(to=account, body=b"before-stop", message_id="m-2")
    # An idle consumer (of another, empty inbox) must notice the broker going away.
    idle_account = f"t-{uuid.uuid4().hex[:12]}"
    await transport.declare_inbox(idle_account)

    async def unexpected(delivery: Delivery) -> Outcome:
        raise AssertionError(f"unexpected delivery {delivery!r}")

    consumer = asyncio.create_task(transport.consume(idle_account, unexpected))
    await asyncio.sleep(0.5)

    await asyncio.to_thread(private_broker.stop_app)
    began = time.monotonic()
    with pytest.raises(TransportUnavailable):
        await asyncio.wait_for(consumer, WAIT)
    print(f"idle consumer noticed stop_app after {time.monotonic() - began:.2f} s")
    assert not transport.connected
    with pytest.raises(TransportUnavailable):
        await transport.publish(to=account, body=b"while-down", message_id="m-3")
    with pytest.raises(TransportUnavailable):
        await transport.connect()

    began = time.monotonic()
    await asyncio.to_thread(private_broker.start_app)
    await connect_within(transport, WAIT)
    print(f"start_app and reconnect took {time.monotonic() - began:.2f} s")
    await transport.declare_inbox(account)
    again = await next_delivery(transport, account)
    assert (again.body, again.message_id) == (b"before-stop", "m-2")

    await transport.delete_inbox(account)
    await transport.delete_inbox(idle_account)
    await transport.close()
    await asyncio.to_thread(private_broker.stop)
    assert not port_open(private_broker.port)
    if machine_up_before:
        # The machine's broker was never touched: it still answers on 5672.
        machine = AmqpTransport(machine_amqp_url())
        try:
            await machine.connect()
            assert machine.connected
        except TransportError as exc:
            pytest.fail(f"machine broker stopped answering: {exc}")
        finally:
            await machine.close()
