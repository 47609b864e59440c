"""Shared fixtures: a work directory for node processes and the machine's RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import MACHINE_AMQP_URL, NodeFactory, NodeProcess, delete_queues, run_id
from tests.support.private_broker import PrivateBroker, free_port, skip_or_fail


def _amqp_answers(url: str) -> bool:
    from exchange.amqp import AmqpTransport

    async def probe() -> bool:
        transport = AmqpTransport(url)
        try:
            await asyncio.wait_for(transport.connect(), timeout=5)
        except Exception:
            return False
        await transport.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The machine's RabbitMQ; fails on CI and skips elsewhere when it does not answer."""
    if not _amqp_answers(MACHINE_AMQP_URL):
        skip_or_fail(f"RabbitMQ is not reachable at {MACHINE_AMQP_URL}")
    return MACHINE_AMQP_URL


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave ``slow`` tests out of a plain run (deselected, not skipped); ``-m slow`` runs them."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
