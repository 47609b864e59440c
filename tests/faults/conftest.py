"""Fixtures for fault tests: a private RabbitMQ node, and node processes that use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeFactory, node_factory
from tests.support.private_broker import PrivateBroker


@pytest.fixture
def private_nodes(
    private_broker: PrivateBroker, tmp_path: Path, db_backend: str
) -> Iterator[NodeFactory]:
    """Node processes on the private broker, with run-unique account ids, on ``db_backend``."""
    with node_factory(private_broker.url, tmp_path, db_backend) as make:
        yield make
