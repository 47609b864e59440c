"""Fixtures for fault tests: a private RabbitMQ node, and node processes that use it."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeFactory, NodeProcess, delete_queues, run_id
from tests.support.private_broker import PrivateBroker, free_port, skip_or_fail


@pytest.fixture
def private_broker() -> Iterator[PrivateBroker]:
    """A private RabbitMQ node on free ports (never the machine's broker on 5672)."""
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None:
        skip_or_fail("a private RabbitMQ node needs rabbitmq-server and root (to chown its dir)")
    run_dir = Path(tempfile.mkdtemp(prefix="tix-faults-broker-", dir="/tmp"))
    broker = PrivateBroker(
        run_dir, f"tixft{uuid.uuid4().hex[:8]}@localhost", free_port(), free_port()
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


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
