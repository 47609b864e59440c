"""Engine and sessions: SQLite (WAL, the default) or PostgreSQL (``TIX_DATABASE_URL``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, SQLModel, create_engine


def _sqlite_pool(url: str | URL, *, size: int) -> Engine:
    """A SQLite engine with a pool of ``size`` connections, shared by the process's threads."""
    return create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=QueuePool,
        pool_size=size,
        max_overflow=0,
        pool_timeout=60,
    )


def _one_connection_sqlite(url: str | URL) -> Engine:
    """A SQLite engine with a pool of one connection, shared by the process's threads."""
    return _sqlite_pool(url, size=1)


def make_engine(url: str) -> Engine:
    """An engine for the node's database; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection per process: threads queue for it at checkout (woken at once) instead
        # of meeting SQLite's busy handler, which sleeps up to 100 ms between tries. SQLite
        # runs one writer at a time anyway; other processes (the CLI) still use busy_timeout.
        engine = _one_connection_sqlite(url)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # Let SQLAlchemy's BEGIN reach SQLite (pysqlite would defer it), and take the write
            # lock up front: two deferred transactions that both read then write deadlock.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


# Page cache of each reader connection (SQLite's default is 2 000 KiB per connection). Readers
# are several per node and their pages are in the OS's file cache anyway; the write connection
# keeps the default. Measured in `tix bench`: peak RSS per node 142 MiB with the default, see
# docs/performance.md "Session 4".
READER_CACHE_KIB = 512


def _sqlite_reader(
    engine: Engine,
    readers: WeakKeyDictionary[Engine, Engine],
    *,
    size: int,
    snapshot_per_transaction: bool,
) -> Engine:
    """The ``query_only`` SQLite pool of ``size`` beside ``engine``, made once (in ``readers``).

    Its connections never take the write lock. Without ``snapshot_per_transaction`` they run in
    autocommit (each statement reads the last committed WAL snapshot); with it each transaction
    starts with a deferred ``BEGIN``, so its queries read one snapshot. Other databases, and an
    in-memory SQLite (a second connection would be another database), get ``engine`` itself.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return engine
    reader = readers.get(engine)
    if reader is None:
        reader = _sqlite_pool(url, size=size)

        @event.listens_for(reader, "connect")
        def _reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA query_only=ON")
            cur.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            cur.close()
            # pysqlite sends no BEGIN of its own: autocommit, or SQLAlchemy's BEGIN (below).
            dbapi_conn.isolation_level = None

        if snapshot_per_transaction:

            @event.listens_for(reader, "begin")
            def _reader_begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN")  # deferred: the snapshot starts at the first read

        readers[engine] = reader
    return reader


_readers: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def reader_for(engine: Engine) -> Engine:
    """An engine for short reads of committed rows that must not queue behind the writer.

    SQLite: a second pool of one ``query_only`` connection to the same file, in autocommit
    (``_sqlite_reader``): each statement reads the last committed WAL snapshot, so it neither
    waits for the node's one write connection (held by an inbox apply or an HTTP request) nor
    holds it up. The outbox relay reads its batch here (``account.messaging.relay``).
    """
    return _sqlite_reader(engine, _readers, size=1, snapshot_per_transaction=False)


# Readers a node's HTTP requests may hold at once (``request_reader_for``). SQLite in WAL mode
# runs any number of readers next to its one writer; a few connections let list and ticket
# pages overlap each other (they spend most of their time in Python, so more would only sit
# idle on two cores), and every further request waits at checkout for one of them.
REQUEST_READERS = 4

_request_readers: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def request_reader_for(engine: Engine) -> Engine:
    """The engine of the node's read-only HTTP requests (GET, HEAD; ``account.deps``).

    SQLite: a pool of ``REQUEST_READERS`` ``query_only`` connections to the same file, apart
    from the node's one write connection and from the relay's reader (``reader_for``). Each
    transaction starts with a deferred ``BEGIN`` (never ``BEGIN IMMEDIATE``: it takes no lock),
    so all the queries of one transaction read one WAL snapshot, the last commit before its
    first query, while the writer goes on committing. A write raises ("attempt to write a
    readonly database"). Other databases get the engine itself (``account.deps`` makes those
    transactions read-only there).
    """
    return _sqlite_reader(
        engine, _request_readers, size=REQUEST_READERS, snapshot_per_transaction=True
    )


class ReadSession(Session):
    """A session that only reads, each transaction one snapshot: see ``read_session``."""


@event.listens_for(ReadSession, "after_begin")
def _read_only_transaction(_session: Session, _transaction: Any, connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # One snapshot for the whole transaction, as SQLite's deferred BEGIN gives; a read-only
        # REPEATABLE READ transaction never fails to serialize, and it refuses any write.
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def read_session(engine: Engine) -> Session:
    """A session on the node's request readers (``request_reader_for``) that cannot write.

    Every transaction reads one consistent snapshot and refuses writes: on SQLite it runs on a
    ``query_only`` reader connection under a deferred ``BEGIN``, on PostgreSQL it is a
    ``REPEATABLE READ, READ ONLY`` transaction on the engine's pool. Committing (or closing)
    ends the snapshot; the next query starts a newer one.
    """
    return ReadSession(request_reader_for(engine), expire_on_commit=False)


def create_tables(engine: Engine) -> None:
    """Create every table that does not exist yet (idempotent)."""
    from account import models  # noqa: F401  (registers the tables on SQLModel.metadata)

    SQLModel.metadata.create_all(engine)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
