"""Test databases: a SQLite file or a throw-away PostgreSQL database, and helpers around them.

Plain functions and context managers (no pytest fixtures), so any test module can build the
fixture it needs::

    @pytest.fixture(scope="module", params=BACKENDS)
    def engine(request, tmp_path_factory):
        with database_url(request.param, tmp_path_factory.mktemp("db")) as url:
            with engine_for(url) as engine:
                yield engine

PostgreSQL is reached at ``TIX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), the maintenance database from which a
uniquely named database is created and, afterwards, dropped. When it cannot be reached the test
is skipped, or fails when ``CI=true`` (CI must not silently skip the PostgreSQL half).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import delete
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from account.db import create_tables, make_engine

__all__ = [
    "BACKENDS",
    "clear_tables",
    "database_url",
    "engine_for",
    "postgres_admin_url",
    "postgres_database",
    "require_postgres",
    "sqlite_url",
]

# Fixture params: ``-m "not needs_postgres"`` deselects the PostgreSQL half.
BACKENDS = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.needs_postgres),
)
_DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    """The libpq URL of the maintenance database used to create and drop test databases."""
    return os.environ.get("TIX_TEST_POSTGRES_URL", _DEFAULT_ADMIN_URL)


def _sqlalchemy_url(libpq_url: str, dbname: str) -> str:
    url = make_url(libpq_url).set(drivername="postgresql+psycopg", database=dbname)
    return url.render_as_string(hide_password=False)


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unreachable; fail instead when ``CI=true``."""
    try:
        with psycopg.connect(postgres_admin_url(), connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {postgres_admin_url()}: {exc}".strip()
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@contextmanager
def postgres_database(prefix: str = "tix_test") -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database as a SQLAlchemy URL; dropped on exit."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _sqlalchemy_url(postgres_admin_url(), name)
    finally:
        with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def sqlite_url(directory: Path, name: str = "test.db") -> str:
    """The SQLAlchemy URL of a SQLite file in ``directory``."""
    return f"sqlite:///{directory / name}"


@contextmanager
def database_url(backend: str, directory: Path) -> Iterator[str]:
    """A URL for ``backend`` ("sqlite" or "postgresql"), cleaned up on exit."""
    if backend == "sqlite":
        yield sqlite_url(directory)
    elif backend == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    """An engine with every table created; disposed on exit (before the database is dropped)."""
    engine = make_engine(url)
    try:
        create_tables(engine)
        yield engine
    finally:
        engine.dispose()


def clear_tables(engine: Engine) -> None:
    """Delete every row of every table, children first, to reuse one database across tests."""
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(delete(table))
