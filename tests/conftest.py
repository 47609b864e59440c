"""Shared fixtures: the database backend, node processes and the machine's RabbitMQ.

``db_backend`` is the one place that chooses the database: a session-scoped fixture
parametrised with SQLite and PostgreSQL. Every fixture that builds a node's database asks for
it (``nodes``, ``private_nodes``, ``engine`` and the harnesses that take it: ``Net``, the fault
chain), so a test that uses one of them runs twice, ``[sqlite]`` and ``[postgresql]``, without
asking; ``-m "not needs_postgres"`` runs the SQLite half only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.db import BACKENDS, flush_drops, require_postgres
from tests.support.nodes import MACHINE_AMQP_URL, NodeFactory, node_factory
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


@pytest.fixture(scope="session", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``: every test using it runs once on each."""
    backend: str = request.param
    if backend == "postgresql":
        require_postgres()
    return backend


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the PostgreSQL databases still waiting for it (tests.support.db)."""
    flush_drops()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


@pytest.fixture
def nodes(amqp_url: str, tmp_path: Path, db_backend: str) -> Iterator[NodeFactory]:
    """Start node processes with run-unique account ids, each on a new database of
    ``db_backend``; stop them, drop their queues and databases after."""
    with node_factory(amqp_url, tmp_path, db_backend) as make:
        yield make


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
    """Leave ``slow`` tests out of a plain run (deselected, not skipped; ``-m slow`` runs
    them), and keep the tests that share a module-scoped fixture on one xdist worker."""
    if "slow" not in (config.getoption("markexpr") or ""):
        slow = [item for item in items if item.get_closest_marker("slow") is not None]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if item.get_closest_marker("slow") is None]
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            group = _shared_fixture_group(item)
            if group:
                item.add_marker(pytest.mark.xdist_group(group))


def _shared_fixture_group(item: pytest.Item) -> str:
    """``module[backend]`` for a test that uses a module-scoped fixture, else "".

    With ``--dist loadgroup`` the tests of one group run on one worker, so a module's chain,
    broker or database is built once per backend, not once per worker; every other test goes
    wherever a worker is free.
    """
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return ""
    scoped = any(
        definition.scope == "module"
        for name in item.fixturenames
        for definition in info.name2fixturedefs.get(name, ())
    )
    if not scoped:
        return ""
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("db_backend", "") if callspec is not None else ""
    return f"{item.nodeid.split('::')[0]}[{backend}]"
