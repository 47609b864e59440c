"""Fixtures for fault tests: a private RabbitMQ node, and node processes that use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeFactory, NodeProcess, delete_queues, run_id
from tests.support.private_broker import PrivateBroker


@pytest.fixture
def private_nodes(private_broker: PrivateBroker, tmp_path: Path) -> Iterator[NodeFactory]:
    """Node processes on the private broker, with run-unique account ids."""
    suffix = run_id()
    started: list[NodeProcess] = []

    def make(name: str, *, start: bool = True, **kwargs: object) -> NodeProcess:
        node = NodeProcess(f"{name}-{suffix}", tmp_path, amqp_url=private_broker.url, **kwargs)  # type: ignore[arg-type]
        node.init()
        started.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in started:
        node.close()
    delete_queues(private_broker.url, [n.account_id for n in started])
