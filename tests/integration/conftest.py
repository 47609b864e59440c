"""Fixtures shared by the DB-level integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.support.db import BACKENDS, database_url, engine_for


@pytest.fixture(scope="module", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """One database per test module, on each backend: a SQLite file, then PostgreSQL."""
    with database_url(request.param, tmp_path_factory.mktemp("db")) as url, engine_for(url) as eng:
        yield eng
