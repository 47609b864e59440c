"""Fixtures shared by the DB-level integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.support.db import database_url, engine_for


@pytest.fixture(scope="module")
def engine(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One database per test module, on each backend (``db_backend``): a SQLite file, then a
    PostgreSQL database."""
    with (
        database_url(db_backend, tmp_path_factory.mktemp("db"), tables=True) as url,
        engine_for(url) as eng,
    ):
        yield eng
