"""Fixtures for tests that run nodes as separate processes over the machine's RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeProcess, run_id

NodeFactory = Callable[..., NodeProcess]


def delete_queues(url: str, accounts: list[str]) -> None:
    """Remove the test accounts' inboxes and dead-letter queues from the broker."""
    from exchange.amqp import AmqpTransport

    async def run() -> None:
        transport = AmqpTransport(url)
        with contextlib.suppress(Exception):
            await transport.connect()
            for account in accounts:
                await transport.delete_inbox(account)
        await transport.close()

    asyncio.run(run())


@pytest.fixture
def nodes(amqp_url: str, tmp_path: Path) -> Iterator[NodeFactory]:
    """Start node processes with run-unique account ids; stop them and drop their queues after."""
    suffix = run_id()
    started: list[NodeProcess] = []

    def make(name: str, *, start: bool = True, **kwargs: object) -> NodeProcess:
        kwargs.setdefault("amqp_url", amqp_url)
        node = NodeProcess(f"{name}-{suffix}", tmp_path, **kwargs)  # type: ignore[arg-type]
        node.init()
        started.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in started:
        node.close()
    delete_queues(amqp_url, [node.account_id for node in started])
