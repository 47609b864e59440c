"""Test databases: a SQLite file or a throw-away PostgreSQL database, and helpers around them.

Every test that touches a node's database runs on both backends: the session-scoped
``db_backend`` fixture (tests/conftest.py) is parametrised with ``BACKENDS``, and the shared
fixtures and harnesses (``engine``, ``nodes``, ``private_nodes``, ``Net``, the fault chain)
build their databases on it. ``-m "not needs_postgres"`` deselects the PostgreSQL half.

PostgreSQL is reached at ``TIX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), the maintenance database from which
uniquely named databases are created. When it cannot be reached the test is skipped, or fails
when ``CI=true`` (CI must not silently skip the PostgreSQL half).

Speed: a database with the node's tables is cloned (``CREATE DATABASE ... TEMPLATE``) from a
template made once per process, which is several times faster than ``create_all``; each test
database commits without waiting for the WAL flush (``synchronous_commit=off``: the server's
durability, nothing the node can see). ``DROP DATABASE`` forces a checkpoint in PostgreSQL 15
(seconds on a busy disk), so drops happen on a background thread, many at once (their
checkpoints coincide); ``flush_drops`` (called at the end of the session) waits for all of them.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
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
    "database_name",
    "database_url",
    "engine_for",
    "flush_drops",
    "node_database_url",
    "node_engine",
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


def database_name(url: str) -> str:
    """The database name in a SQLAlchemy URL."""
    return str(make_url(url).database)


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


class _Dropper:
    """Drops databases on a background thread, all that are waiting at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[str] = []
        self._busy = 0
        self._thread: threading.Thread | None = None

    def drop(self, name: str) -> None:
        with self._cond:
            self._waiting.append(name)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tix-db-dropper", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        with ThreadPoolExecutor(8, thread_name_prefix="tix-db-drop") as pool:
            while True:
                with self._cond:
                    while not self._waiting:
                        self._cond.wait()
                    batch, self._waiting = self._waiting, []
                    self._busy = len(batch)
                list(pool.map(_drop_now, batch))
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every database handed over so far is dropped."""
        with self._cond:
            while self._waiting or self._busy:
                self._cond.wait()


def _drop_now(name: str) -> None:
    try:
        with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:  # reported, never raised: a drop must not fail a test
        print(f"tests.support.db: could not drop database {name}: {exc}")


_DROPPER = _Dropper()


def flush_drops() -> None:
    """Drop the node template and wait for every pending drop (the end of the session calls
    it; an xdist worker may exit without running ``atexit``)."""
    if _node_template.cache_info().currsize:
        _DROPPER.drop(_node_template())
        _node_template.cache_clear()
    _DROPPER.flush()


def _create(name: str, template: str | None = None) -> None:
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
        )


@functools.cache
def _node_template() -> str:
    """A database with the node's tables, stamped at the head revision as ``tix node init``
    leaves it; made once per process and dropped when it exits."""
    from account import migrate

    name = f"tix_tpl_{uuid.uuid4().hex[:12]}"
    _create(name)
    atexit.register(_drop_now, name)  # in case the session ends without flush_drops
    migrate.prepare(_sqlalchemy_url(postgres_admin_url(), name))
    return name


@contextmanager
def postgres_database(
    prefix: str = "tix_test", *, tables: bool = False, copy_of: str = ""
) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database as a SQLAlchemy URL; dropped after exit.

    Empty by default; with ``tables`` a clone of the node template (every table, stamped at
    head); with ``copy_of`` (a URL) a clone of that database, which nobody may be connected to.
    """
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    if copy_of:
        template: str | None = database_name(copy_of)
    elif tables:
        template = _node_template()
    else:
        template = None
    _create(name, template)
    try:
        yield _sqlalchemy_url(postgres_admin_url(), name)
    finally:
        _DROPPER.drop(name)


def sqlite_url(directory: Path, name: str = "test.db") -> str:
    """The SQLAlchemy URL of a SQLite file in ``directory``."""
    return f"sqlite:///{directory / name}"


@contextmanager
def database_url(backend: str, directory: Path, *, tables: bool = False) -> Iterator[str]:
    """A URL for ``backend`` ("sqlite" or "postgresql"), cleaned up on exit.

    With ``tables`` a PostgreSQL database starts with the node's tables (a SQLite file is made
    by whoever opens it: ``engine_for``, ``tix node init``)."""
    if backend == "sqlite":
        yield sqlite_url(directory)
    elif backend == "postgresql":
        with postgres_database(tables=tables) as url:
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


@contextmanager
def node_engine(backend: str, directory: Path, name: str = "node.db") -> Iterator[Engine]:
    """An engine on a new node database of ``backend`` with every table (a PostgreSQL one
    cloned from the template, then topped up with tables registered since); disposed and
    dropped on exit."""
    if backend == "sqlite":
        with engine_for(sqlite_url(directory, name)) as engine:
            yield engine
    else:
        with postgres_database(tables=True) as url, engine_for(url) as engine:
            yield engine


def node_database_url(backend: str, stack: ExitStack, *, tables: bool = True) -> str:
    """``TIX_DATABASE_URL`` for a node process on ``backend``: "" (its SQLite file) or a new
    PostgreSQL database (the node template's clone, or empty without ``tables``) that
    ``stack`` drops on exit."""
    if backend == "sqlite":
        return ""
    return stack.enter_context(postgres_database(tables=tables))


def clear_tables(engine: Engine) -> None:
    """Delete every row of every table, children first, to reuse one database across tests."""
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(delete(table))
