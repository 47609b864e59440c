"""The transport contract (``exchange.transport``), run against every implementation."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from exchange.errors import TransportError, TransportUnavailable, Unroutable
from exchange.inprocess import InProcessBroker, InProcessTransport
from exchange.transport import DELIVERY_LIMIT, Delivery, Outcome, Transport

WAIT = 20.0
# Lets the settle (ack/nack) of the last handled delivery reach the broker before we stop.
SETTLE = 0.2

Decide = Callable[[Delivery], Outcome]
NewAccount = Callable[[], Awaitable[str]]


def unique_account() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def ack_all(_delivery: Delivery) -> Outcome:
    return Outcome.ack()


class Recorder:
    """A handler that records deliveries and answers with ``decide`` (up to ``stop_after``)."""

    def __init__(self, decide: Decide = ack_all, *, stop_after: int | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.decide = decide
        self.stop_after = stop_after

    async def __call__(self, delivery: Delivery) -> Outcome:
        if self.stop_after is not None and len(self.deliveries) >= self.stop_after:
            # Held unsettled until consume_until cancels the consumer: it stays in the inbox.
            await asyncio.sleep(WAIT * 10)
        self.deliveries.append(delivery)
        return self.decide(delivery)

    @property
    def bodies(self) -> list[bytes]:
        return [d.body for d in self.deliveries]


async def consume_until(
    transport: Transport,
    account: str,
    handler: Recorder,
    done: Callable[[], bool],
    timeout: float = WAIT,
) -> None:
    """Run a consumer until ``done()`` holds, then stop it; fail after ``timeout``."""
    task = asyncio.create_task(transport.consume(account, handler))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if task.done():
                task.result()
                pytest.fail("consume() returned before the expected deliveries")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s; got {handler.bodies!r}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(SETTLE)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def first_delivery(transport: Transport, account: str) -> Delivery:
    """The next delivery of the inbox (acked); later ones stay in the inbox."""
    recorder = Recorder(stop_after=1)
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 1)
    return recorder.deliveries[0]


async def publish_many(transport: Transport, account: str, bodies: list[bytes]) -> None:
    for n, body in enumerate(bodies):
        await transport.publish(to=account, body=body, message_id=f"{account}-{n}")


async def test_publish_then_consume_delivers_body_id_and_headers_in_order(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    for n in range(50):
        await transport.publish(
            to=account,
            body=b'{"n": %d}' % n,
            message_id=f"msg-{n}",
            headers={"tix-kind": "ticket.update", "tix-seq": str(n)},
        )
    recorder = Recorder()
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 50)

    assert [d.body for d in recorder.deliveries] == [b'{"n": %d}' % n for n in range(50)]
    assert [d.message_id for d in recorder.deliveries] == [f"msg-{n}" for n in range(50)]
    assert [dict(d.headers) for d in recorder.deliveries] == [
        {"tix-kind": "ticket.update", "tix-seq": str(n)} for n in range(50)
    ]
    assert not any(d.redelivered for d in recorder.deliveries)
    assert all(d.delivery_count == 0 for d in recorder.deliveries)


async def test_publish_to_an_unknown_recipient_raises_unroutable_and_delivers_nothing(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    with pytest.raises(Unroutable):
        await transport.publish(to=unique_account(), body=b"{}", message_id="lost")
    # The transport is still usable, and the returned message reached no inbox.
    await transport.publish(to=account, body=b"marker", message_id="marker")
    delivery = await first_delivery(transport, account)
    assert delivery.body == b"marker"
    assert await transport.dead_letters(account) == []


async def test_ack_removes_the_message(transport: Transport, new_account: NewAccount) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"one"])
    assert (await first_delivery(transport, account)).body == b"one"

    await transport.publish(to=account, body=b"marker", message_id="marker")
    delivery = await first_delivery(transport, account)
    assert delivery.body == b"marker"
    assert not delivery.redelivered


async def test_retry_redelivers_the_same_message_flagged_and_counted_before_later_messages(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"a", b"b", b"c"])

    def retry_a_twice(delivery: Delivery) -> Outcome:
        if delivery.body == b"a" and delivery.delivery_count < 2:
            return Outcome.retry("db_locked")
        return Outcome.ack()

    recorder = Recorder(retry_a_twice)
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 5)

    seen = [(d.body, d.redelivered, d.delivery_count) for d in recorder.deliveries]
    assert seen == [
        (b"a", False, 0),
        (b"a", True, 1),
        (b"a", True, 2),
        (b"b", False, 0),
        (b"c", False, 0),
    ]
    assert len({d.message_id for d in recorder.deliveries[:3]}) == 1


async def test_retry_keeps_queue_order_with_a_backlog(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    bodies = [b"%d" % n for n in range(30)]
    await publish_many(transport, account, bodies)

    def retry_every_seventh_once(delivery: Delivery) -> Outcome:
        if int(delivery.body) % 7 == 0 and delivery.delivery_count == 0:
            return Outcome.retry("transient")
        return Outcome.ack()

    recorder = Recorder(retry_every_seventh_once)

    def acked() -> list[bytes]:
        return [d.body for d in recorder.deliveries if d.delivery_count or int(d.body) % 7]

    await consume_until(transport, account, recorder, lambda: len(acked()) >= 30)
    assert acked() == bodies


async def test_dead_letter_moves_it_to_dead_letters_with_the_reason_and_the_next_is_delivered(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await transport.publish(
        to=account, body=b"poison", message_id="p-1", headers={"tix-kind": "ticket.update"}
    )
    await transport.publish(to=account, body=b"fine", message_id="f-1")

    def dead_poison(delivery: Delivery) -> Outcome:
        return Outcome.dead("bad_signature") if delivery.body == b"poison" else Outcome.ack()

    recorder = Recorder(dead_poison)
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 2)
    assert recorder.bodies == [b"poison", b"fine"]

    for _peek in range(2):  # peeking does not remove
        dead = await transport.dead_letters(account)
        assert [(d.body, d.message_id, d.reason, dict(d.headers)) for d in dead] == [
            (b"poison", "p-1", "bad_signature", {"tix-kind": "ticket.update"})
        ]


async def test_replay_dead_puts_the_message_back_into_the_inbox(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await transport.publish(to=account, body=b"poison", message_id="p-1", headers={"h": "v"})
    recorder = Recorder(lambda _d: Outcome.dead("schema_invalid"))
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 1)
    assert len(await transport.dead_letters(account)) == 1

    assert await transport.replay_dead(account) == 1
    assert await transport.dead_letters(account) == []
    delivery = await first_delivery(transport, account)
    assert (delivery.body, delivery.message_id, dict(delivery.headers)) == (
        b"poison",
        "p-1",
        {"h": "v"},
    )
    assert await transport.replay_dead(account) == 0


async def test_a_replayed_message_that_dies_again_is_not_replayed_twice_by_one_call(
    transport: Transport, new_account: NewAccount
) -> None:
    """The node still refuses the message: it goes back to the dead letters while the replay
    runs, and the call moves only what was there when it was asked (one), not it again."""
    account = await new_account()
    await transport.publish(to=account, body=b"poison", message_id="p-1")
    recorder = Recorder(lambda _d: Outcome.dead("schema_invalid"))
    task = asyncio.create_task(transport.consume(account, recorder))
    try:
        deadline = time.monotonic() + WAIT
        while len(await transport.dead_letters(account)) < 1:
            assert time.monotonic() < deadline, recorder.deliveries
            await asyncio.sleep(0.05)

        assert await transport.replay_dead(account) == 1

        while len(recorder.deliveries) < 2 or len(await transport.dead_letters(account)) < 1:
            assert time.monotonic() < deadline, recorder.deliveries
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [d.message_id for d in await transport.dead_letters(account)] == ["p-1"]
    assert [d.body for d in recorder.deliveries] == [b"poison", b"poison"]


async def test_a_consumer_stopped_just_after_its_handler_decided_still_settles(
    transport: Transport, new_account: NewAccount
) -> None:
    """A stop (cancel) that lands between the handler's verdict and its settlement finishes
    the settlement: a decided message is dead-lettered or acked once, not handed back."""
    account = await new_account()
    await publish_many(transport, account, [b"poison", b"fine", b"last"])
    decided: list[bytes] = []
    for _round in range(2):
        once = asyncio.Event()

        async def decide(delivery: Delivery, once: asyncio.Event = once) -> Outcome:
            if once.is_set():
                await asyncio.sleep(WAIT * 10)  # held unsettled until the stop: stays queued
            once.set()
            decided.append(delivery.body)
            return Outcome.dead("parked") if delivery.body == b"poison" else Outcome.ack()

        task = asyncio.create_task(transport.consume(account, decide))
        try:
            async with asyncio.timeout(WAIT):
                await once.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # No waiting here: the stop itself finished the settlement.
        assert [d.reason for d in await transport.dead_letters(account)] == ["parked"]
    assert decided == [b"poison", b"fine"]
    assert (await first_delivery(transport, account)).body == b"last"


async def test_a_delivery_whose_handler_raises_is_retried_not_lost(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"boom", b"after"])
    seen: list[Delivery] = []

    async def explode_once(delivery: Delivery) -> Outcome:
        seen.append(delivery)
        if delivery.body == b"boom" and delivery.delivery_count == 0:
            raise RuntimeError("handler bug")
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(account, explode_once))
    try:
        deadline = time.monotonic() + WAIT
        while len(seen) < 3:
            assert not task.done(), task
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(d.body, d.redelivered, d.delivery_count) for d in seen] == [
        (b"boom", False, 0),
        (b"boom", True, 1),
        (b"after", False, 0),
    ]
    assert await transport.dead_letters(account) == []


async def test_messages_published_while_no_consumer_runs_are_delivered_when_one_starts(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"early-1", b"early-2"])
    await asyncio.sleep(0.2)
    recorder = Recorder()
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 2)
    assert recorder.bodies == [b"early-1", b"early-2"]


async def test_unconsumed_messages_are_still_there_after_close_and_connect_again(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"1", b"2", b"3"])
    assert (await first_delivery(transport, account)).body == b"1"

    await transport.close()
    assert not transport.connected
    await transport.connect()
    assert transport.connected

    recorder = Recorder()
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 2)
    assert recorder.bodies == [b"2", b"3"]


async def test_declare_inbox_twice_is_harmless(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await transport.publish(to=account, body=b"kept", message_id="k-1")
    await transport.declare_inbox(account)
    await transport.declare_inbox(account)
    assert (await first_delivery(transport, account)).body == b"kept"


async def test_connect_twice_is_a_no_op_and_close_twice_is_safe(transport: Transport) -> None:
    await transport.connect()
    assert transport.connected
    await transport.close()
    await transport.close()
    assert not transport.connected


async def test_operations_after_close_raise_transport_unavailable(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await transport.close()
    with pytest.raises(TransportUnavailable):
        await transport.publish(to=account, body=b"x", message_id="x")
    with pytest.raises(TransportUnavailable):
        await transport.consume(account, Recorder())


async def test_close_stops_a_running_consumer_and_keeps_its_delivery(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await transport.publish(to=account, body=b"slow", message_id="s-1")
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(_delivery: Delivery) -> Outcome:
        started.set()
        await release.wait()
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(account, slow))
    await asyncio.wait_for(started.wait(), WAIT)
    await transport.close()
    release.set()
    await asyncio.wait_for(task, WAIT)  # returns, no exception

    await transport.connect()
    delivery = await first_delivery(transport, account)
    assert (delivery.body, delivery.redelivered) == (b"slow", True)


async def test_cancelling_the_consumer_mid_handler_gives_the_delivery_back(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"first", b"second"])
    started = asyncio.Event()

    async def hang(_delivery: Delivery) -> Outcome:
        started.set()
        await asyncio.sleep(3600)
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(account, hang))
    await asyncio.wait_for(started.wait(), WAIT)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    recorder = Recorder()
    await consume_until(transport, account, recorder, lambda: len(recorder.deliveries) >= 2)
    assert [(d.body, d.redelivered) for d in recorder.deliveries] == [
        (b"first", True),
        (b"second", recorder.deliveries[1].redelivered),
    ]


async def test_retrying_past_the_delivery_limit_dead_letters_with_reason_delivery_limit(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    await publish_many(transport, account, [b"always-fails", b"next"])
    recorder = Recorder(
        lambda d: Outcome.retry("db_locked") if d.body == b"always-fails" else Outcome.ack()
    )
    await consume_until(transport, account, recorder, lambda: b"next" in recorder.bodies)

    counts = [d.delivery_count for d in recorder.deliveries if d.body == b"always-fails"]
    assert counts == list(range(DELIVERY_LIMIT + 1))
    dead = await transport.dead_letters(account)
    assert [(d.body, d.reason) for d in dead] == [(b"always-fails", "delivery_limit")]


async def test_deleting_the_inbox_ends_its_consumer_with_a_transport_error(
    transport: Transport, new_account: NewAccount
) -> None:
    account = await new_account()
    task = asyncio.create_task(transport.consume(account, Recorder()))
    await asyncio.sleep(0.3)
    await transport.delete_inbox(account)
    with pytest.raises(TransportError):
        await asyncio.wait_for(task, WAIT)
    with pytest.raises(Unroutable):
        await transport.publish(to=account, body=b"x", message_id="x")


async def test_inprocess_broker_down_makes_every_operation_unavailable_and_keeps_messages() -> None:
    broker = InProcessBroker()
    transport = InProcessTransport(broker)
    await transport.connect()
    account, idle_account = unique_account(), unique_account()
    await transport.declare_inbox(account)
    await transport.declare_inbox(idle_account)
    await transport.publish(to=account, body=b"kept", message_id="k-1")
    consumer = asyncio.create_task(transport.consume(idle_account, Recorder()))
    await asyncio.sleep(0.05)

    broker.down = True
    assert not transport.connected
    with pytest.raises(TransportUnavailable):
        await asyncio.wait_for(consumer, WAIT)
    with pytest.raises(TransportUnavailable):
        await transport.publish(to=account, body=b"x", message_id="x")
    with pytest.raises(TransportUnavailable):
        await transport.connect()

    broker.down = False
    assert not transport.connected  # a dropped connection stays dropped until connect()
    await transport.connect()
    assert (await first_delivery(transport, account)).body == b"kept"
    await transport.close()
