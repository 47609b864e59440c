"""Fixtures of the transport contract suite: one ``transport`` per implementation."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from exchange.amqp import AmqpTransport
from exchange.errors import TransportError
from exchange.inprocess import InProcessBroker, InProcessTransport
from exchange.transport import Transport
from tests.support.private_broker import machine_amqp_url, skip_or_fail

# Short back-off so RETRY cases run fast; the production default is 0.2 s.
TEST_RETRY_BACKOFF = 0.01
TEST_MAX_RETRY_BACKOFF = 0.05

NewAccount = Callable[[], Awaitable[str]]
MakeTransport = Callable[[], Transport]


def unique_account() -> str:
    """A fresh account id, so tests never share queues."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(
    params=[
        pytest.param("inprocess", id="inprocess"),
        pytest.param("amqp", id="amqp", marks=pytest.mark.needs_rabbitmq),
    ]
)
def make_transport(request: pytest.FixtureRequest) -> MakeTransport:
    """A factory of unconnected transports sharing one broker; once per implementation."""
    kind: str = request.param
    if kind == "inprocess":
        broker = InProcessBroker()
        return lambda: InProcessTransport(
            broker, retry_backoff=TEST_RETRY_BACKOFF, max_retry_backoff=TEST_MAX_RETRY_BACKOFF
        )
    url = machine_amqp_url()
    return lambda: AmqpTransport(
        url, retry_backoff=TEST_RETRY_BACKOFF, max_retry_backoff=TEST_MAX_RETRY_BACKOFF
    )


@pytest.fixture
async def transport(make_transport: MakeTransport) -> AsyncIterator[Transport]:
    """A connected transport; skipped (or failed on CI) when RabbitMQ is not reachable."""
    created = make_transport()
    try:
        await created.connect()
    except TransportError as exc:
        await created.close()
        skip_or_fail(f"RabbitMQ not reachable at {machine_amqp_url()}: {exc}")
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
async def new_account(
    transport: Transport, make_transport: MakeTransport
) -> AsyncIterator[NewAccount]:
    """A factory of declared inboxes with unique ids, deleted again at teardown."""
    made: list[str] = []

    async def declare() -> str:
        account = unique_account()
        made.append(account)
        await transport.declare_inbox(account)
        return account

    yield declare
    # The test may have closed its transport; clean up through a fresh one.
    cleaner = make_transport()
    try:
        with contextlib.suppress(TransportError):
            await cleaner.connect()
            for account in made:
                await cleaner.delete_inbox(account)
    finally:
        await cleaner.close()
