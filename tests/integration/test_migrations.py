"""Schema migrations (``account/migrations``) on SQLite and PostgreSQL.

- The newest revision builds exactly the schema the models describe: autogenerate finds no
  difference, whether the database was migrated from empty or made by ``tix node init``.
- A database at revision 0001 (the schema of a1de871, the last release without migrations)
  with rows in it migrates forward, and the current code reads and writes those rows.
- A database made before migrations existed (no version table) is taken as 0001 and upgraded.
- ``tix db current|upgrade`` and the node's refusal to run on an out-of-date schema.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, inspect, pool, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from account import migrate
from account.db import make_engine
from account.delegations.models import Delegation
from account.links.models import Link
from account.messaging.models import OutboxMessage
from account.tickets import service as ticket_service
from account.tickets.models import Comment, Ticket
from account.users.models import User
from tests.support.db import postgres_database, sqlite_url

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LINK_ID = str(uuid.uuid4())
DELEGATION_ID = str(uuid.uuid4())
CHAIN_ID = str(uuid.uuid4())
MESSAGE_ID = str(uuid.uuid4())
BODY = b'{"v":1,"type":"delegation.offer"}'


@pytest.fixture
def url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend (a run-unique PostgreSQL database, dropped after)."""
    if db_backend == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_database("tix_migrations") as pg_url:
            yield pg_url


def plain_engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool)


def insert_release_0001_rows(url: str) -> None:
    """Rows as the a1de871 code wrote them, into the tables as revision 0001 made them."""
    engine = plain_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        t = meta.tables
        with engine.begin() as conn:
            conn.execute(
                t["user"].insert(),
                {
                    "username": "admin",
                    "full_name": "Admin",
                    "password_hash": "x",
                    "role": "admin",
                    "active": True,
                    "created_at": NOW,
                },
            )
            conn.execute(
                t["link"].insert(),
                {
                    "id": LINK_ID,
                    "account_id": "acme",
                    "peer_account": "northwind",
                    "peer_label": "Northwind",
                    "direction": "downstream",
                    "state": "active",
                    "peer_public_key": "k" * 43,
                    "peer_kid": "0123456789abcdef",
                    "contract": {"auto_accept": True},
                    "seq_out": 3,
                    "seq_in": 1,
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            )
            ticket_id = conn.execute(
                t["ticket"].insert(),
                {
                    "number": "ACME-1",
                    "account_id": "acme",
                    "title": "ATM 0417 out of service",
                    "description": "",
                    "priority": "high",
                    "status": "delegated",
                    "chain_id": CHAIN_ID,
                    "depth": 0,
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            ).inserted_primary_key[0]
            conn.execute(
                t["delegation"].insert(),
                {
                    "delegation_id": DELEGATION_ID,
                    "account_id": "acme",
                    "role": "out",
                    "link_id": LINK_ID,
                    "peer_account": "northwind",
                    "ticket_id": ticket_id,
                    "state": "accepted",
                    "note": "",
                    "seq_out": 2,
                    "seq_in": 1,
                    "offered_at": NOW,
                    "updated_at": NOW,
                },
            )
            conn.execute(
                t["comment"].insert(),
                {
                    "comment_id": str(uuid.uuid4()),
                    "ticket_id": ticket_id,
                    "author": "Admin",
                    "body": "sent an engineer",
                    "visibility": "partner",
                    "created_at": NOW,
                },
            )
            conn.execute(
                t["outboxmessage"].insert(),
                {
                    "message_id": MESSAGE_ID,
                    "account_id": "acme",
                    "to_account": "northwind",
                    "type": "delegation.offer",
                    "subject": DELEGATION_ID,
                    "body": BODY,
                    "state": "pending",
                    "tries": 0,
                    "next_try_at": NOW,
                    "created_at": NOW,
                },
            )
    finally:
        engine.dispose()


def test_head_builds_exactly_the_schema_of_the_models(url: str) -> None:
    before, after = migrate.upgrade(url)
    assert (before, after) == (None, migrate.head())
    assert migrate.differences(url) == []


def test_a_new_database_made_by_node_init_is_at_head_and_matches_the_models(url: str) -> None:
    assert migrate.prepare(url) == (None, migrate.head())
    assert migrate.differences(url) == []
    # Run again (``tix node init`` is safe to run twice): already at head, nothing to do.
    assert migrate.prepare(url) == (migrate.head(), migrate.head())


def test_a_release_0001_database_with_rows_migrates_forward_and_keeps_them(url: str) -> None:
    migrate.upgrade(url, "0001")
    insert_release_0001_rows(url)
    engine = make_engine(url)
    try:
        with pytest.raises(migrate.SchemaOutOfDate, match="tix db upgrade"):
            migrate.check_current(engine)
    finally:
        engine.dispose()

    assert migrate.upgrade(url) == ("0001", migrate.head())
    assert migrate.differences(url) == []

    engine = make_engine(url)
    try:
        migrate.check_current(engine)
        with Session(engine) as session:
            ticket = session.exec(select(Ticket)).one()
            assert (ticket.number, ticket.title, ticket.status) == (
                "ACME-1",
                "ATM 0417 out of service",
                "delegated",
            )
            assert ticket.sla_state == "none"  # added by 0002 with its default
            assert ticket.created_at == NOW
            delegation = session.exec(select(Delegation)).one()
            assert (delegation.delegation_id, delegation.state, delegation.seq_out) == (
                DELEGATION_ID,
                "accepted",
                2,
            )
            assert delegation.sla_state == "none"
            link = session.exec(select(Link)).one()
            assert link.contract == {"auto_accept": True}
            assert (link.seq_out, link.peer_kid) == (3, "0123456789abcdef")
            row = session.exec(select(OutboxMessage)).one()
            assert (row.message_id, bytes(row.body), row.traceparent) == (MESSAGE_ID, BODY, None)
            assert session.exec(select(User)).one().username == "admin"
            # 0004 indexed the existing tickets for the search (SQLite: the FTS table rebuilt).
            admin: Any = SimpleNamespace(role="admin")
            for q in ("0417", "atm 0417 OUT", "acme-1"):
                found, total = ticket_service.list_visible(
                    session=session, account_id="acme", user=admin, q=q
                )
                assert ([t.number for t in found], total) == (["ACME-1"], 1), q
            # The current code writes to the migrated tables too.
            assert ticket.id is not None
            session.add(
                Comment(
                    comment_id=str(uuid.uuid4()), ticket_id=ticket.id, author="Admin", body="more"
                )
            )
            row.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            session.add(row)
            session.commit()
            assert len(session.exec(select(Comment)).all()) == 2
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_is_taken_as_0001_and_upgraded(url: str) -> None:
    migrate.upgrade(url, "0001")
    insert_release_0001_rows(url)
    engine = plain_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as create_all left it
    engine.dispose()

    assert migrate.upgrade(url) == ("0001", migrate.head())
    assert migrate.differences(url) == []
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            assert session.exec(select(Ticket.number)).all() == ["ACME-1"]
    finally:
        engine.dispose()


def test_tix_db_current_and_upgrade_and_serve_refusing_an_old_schema(
    url: str, tmp_path: Path
) -> None:
    from account.cli import app

    migrate.upgrade(url, "0001")
    env = {"TIX_DATABASE_URL": url, "TIX_ACCOUNT_ID": "acme", "TIX_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(app, ["db", "current"], env=env)
    assert result.exit_code == 0, result.output
    assert "database 0001" in result.output and "tix db upgrade" in result.output
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:  # `tix node serve` configures logging for the process; put the test's back after
        result = runner.invoke(app, ["node", "serve"], env=env)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "cannot serve" in said and "run `tix db upgrade`" in said
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert f"0001 → {migrate.head()}" in result.output
    result = runner.invoke(app, ["db", "current"], env=env)
    assert "up to date" in result.output
    engine = plain_engine(url)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_head_read_from_the_scripts_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert migrate.head() == scripts.get_current_head()


def test_checking_the_revision_does_not_load_alembic(tmp_path: Path) -> None:
    """``tix node serve`` checks the schema without Alembic in memory (about 10 MiB)."""
    import subprocess
    import sys

    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    code = (
        "import sys\n"
        "from account import bootstrap, migrate\n"
        "from account.db import make_engine\n"
        f"engine = make_engine({url!r})\n"
        "migrate.check_current(engine)\n"
        "assert migrate.current(engine) == migrate.head(), migrate.current(engine)\n"
        "print(sorted(m for m in sys.modules if m.startswith('alembic')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
