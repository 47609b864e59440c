"""The adapters' own migrations (``adapters/<name>/migrations``) on SQLite and PostgreSQL.

- Each adapter's head builds exactly the tables its models describe, migrated from empty or
  created new by ``prepare`` (what ``tix adapter <name> serve`` runs on start).
- An e-mail adapter database at its first revision (the tables as released, before
  ``mailoutbox.envelope_from``) with rows in it migrates forward; the current code reads them.
- Tables made by ``create_all`` before the adapters had migrations (no version table) are
  stamped at the revision they match and upgraded from there.
- The adapter's chain and the node's share the database without seeing each other.
- ``tix adapter email db upgrade|current``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, inspect, pool, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from account import migrate as node_migrate
from adapters.email import SCHEMA as EMAIL
from adapters.email.models import MailInbound, MailOutbox, MailParticipant, MailThread
from adapters.hosting import migrate
from adapters.hosting.schema import AdapterSchema
from adapters.webhook import SCHEMA as WEBHOOK
from adapters.webhook.models import WebhookOutbox, WebhookParticipant
from tests.support.db import BACKENDS, postgres_database, sqlite_url

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCHEMAS = [pytest.param(EMAIL, id="email"), pytest.param(WEBHOOK, id="webhook")]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend (a run-unique PostgreSQL database, dropped after)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_database("tix_adapter_migrations") as pg_url:
            yield pg_url


def plain_engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool)


def version(schema: AdapterSchema, url: str) -> str | None:
    engine = plain_engine(url)
    try:
        return migrate.current(schema, engine)
    finally:
        engine.dispose()


def insert_released_email_rows(url: str) -> None:
    """Rows as the e-mail adapter of 96a34ad wrote them, into its tables as email_0001 made."""
    engine = plain_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine, only=["mailparticipant", "mailoutbox", "mailthread", "mailinbound"])
        assert "envelope_from" not in meta.tables["mailoutbox"].c
        with engine.begin() as conn:
            conn.execute(
                meta.tables["mailparticipant"].insert(),
                {
                    "account_id": "coolfix-a1b2",
                    "adapter_account": "mailgw",
                    "name": "CoolFix",
                    "emails": ["dispatch@coolfix.example"],
                    "language": "ru",
                    "upstream_account": "acme",
                    "link_id": str(uuid.uuid4()),
                    "undeliverable": False,
                    "created_at": NOW,
                },
            )
            conn.execute(
                meta.tables["mailoutbox"].insert(),
                {
                    "message_id": "<tix.1@mail.example>",
                    "account_id": "coolfix-a1b2",
                    "delegation_id": str(uuid.uuid4()),
                    "kind": "offer",
                    "recipients": ["dispatch@coolfix.example"],
                    "raw": b"Subject: offer\r\n\r\nbody\r\n",
                    "state": "pending",
                    "tries": 2,
                    "next_try_at": NOW,
                    "last_error": "421 try later",
                    "created_at": NOW,
                },
            )
            conn.execute(
                meta.tables["mailthread"].insert(),
                {"token": "t" * 20, "account_id": "coolfix-a1b2", "delegation_id": "d" * 36},
            )
            conn.execute(
                meta.tables["mailinbound"].insert(),
                {
                    "dedupe_key": "<reply.1@coolfix.example>",
                    "account_id": "coolfix-a1b2",
                    "verdict": "process",
                    "reason": "",
                    "detail": {"command": "accept"},
                    "received_at": NOW,
                },
            )
    finally:
        engine.dispose()


def assert_email_rows_read_and_write(url: str) -> None:
    engine = plain_engine(url)
    try:
        with Session(engine) as session:
            participant = session.exec(select(MailParticipant)).one()
            assert (participant.name, participant.emails, participant.language) == (
                "CoolFix",
                ["dispatch@coolfix.example"],
                "ru",
            )
            mail = session.exec(select(MailOutbox)).one()
            assert (mail.envelope_from, mail.tries, mail.last_error) == ("", 2, "421 try later")
            assert mail.raw == b"Subject: offer\r\n\r\nbody\r\n"
            assert session.exec(select(MailThread)).one().token == "t" * 20
            assert session.exec(select(MailInbound)).one().detail == {"command": "accept"}
            session.add(
                MailOutbox(
                    message_id="<tix.2@mail.example>",
                    account_id="coolfix-a1b2",
                    kind="notice",
                    recipients=["dispatch@coolfix.example"],
                    envelope_from="r+token@mail.example",
                    raw=b"x",
                )
            )
            session.commit()
            assert len(session.exec(select(MailOutbox)).all()) == 2
    finally:
        engine.dispose()


@pytest.mark.parametrize("schema", SCHEMAS)
def test_head_builds_the_tables_the_models_describe(schema: AdapterSchema, url: str) -> None:
    before, after = migrate.upgrade(schema, url)
    assert (before, after) == (None, migrate.head(schema))
    assert migrate.differences(schema, url) == []
    tables = set(inspect(plain_engine(url)).get_table_names())
    assert schema.tables() <= tables and schema.version_table in tables
    assert "alembic_version" not in tables  # the node's chain is not touched


@pytest.mark.parametrize("schema", SCHEMAS)
def test_prepare_creates_new_tables_at_head_and_then_leaves_them(
    schema: AdapterSchema, url: str
) -> None:
    assert migrate.prepare(schema, url) == (None, migrate.head(schema))
    assert migrate.differences(schema, url) == []
    assert migrate.prepare(schema, url) == (migrate.head(schema), migrate.head(schema))


def test_an_email_database_with_rows_migrates_forward_from_its_first_revision(url: str) -> None:
    migrate.upgrade(EMAIL, url, EMAIL.first_revision)
    assert version(EMAIL, url) == "email_0001"
    insert_released_email_rows(url)

    assert migrate.prepare(EMAIL, url) == ("email_0001", migrate.head(EMAIL))
    assert migrate.differences(EMAIL, url) == []
    assert_email_rows_read_and_write(url)


def test_a_webhook_database_with_a_participant_migrates_to_secret_rolling(url: str) -> None:
    migrate.upgrade(WEBHOOK, url, WEBHOOK.first_revision)
    assert version(WEBHOOK, url) == "webhook_0001"
    engine = plain_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO webhookparticipant (account_id, adapter_account, name, created_at,"
                    " url, secret, mapping) VALUES ('zen-1234', 'hooks', 'Zen Co',"
                    " '2026-11-30 10:00:00', 'https://zen.example/hook', :secret, '{}')"
                ),
                {"secret": "s" * 40},
            )
    finally:
        engine.dispose()

    assert migrate.prepare(WEBHOOK, url) == ("webhook_0001", migrate.head(WEBHOOK))
    assert migrate.differences(WEBHOOK, url) == []
    engine = plain_engine(url)
    try:
        with Session(engine) as session:
            participant = session.exec(select(WebhookParticipant)).one()
            assert (participant.secret, participant.previous_secret) == ("s" * 40, None)
            assert participant.previous_secret_until is None
    finally:
        engine.dispose()


def test_released_email_tables_without_a_version_table_are_taken_as_the_first_revision(
    url: str,
) -> None:
    """As an adapter made them with ``create_all`` before it had migrations (96a34ad)."""
    migrate.upgrade(EMAIL, url, EMAIL.first_revision)
    engine = plain_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {EMAIL.version_table}"))
    finally:
        engine.dispose()
    insert_released_email_rows(url)

    assert migrate.prepare(EMAIL, url) == ("email_0001", migrate.head(EMAIL))
    assert migrate.differences(EMAIL, url) == []
    assert_email_rows_read_and_write(url)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_current_tables_without_a_version_table_are_stamped_at_head(
    schema: AdapterSchema, url: str
) -> None:
    """As ``create_all`` made them from the current models: nothing to migrate, rows kept."""
    engine = plain_engine(url)
    try:
        schema.load_models()
        SQLModel.metadata.create_all(
            engine, tables=[SQLModel.metadata.tables[name] for name in schema.tables()]
        )
        with Session(engine) as session:
            session.add(
                WebhookParticipant(
                    account_id="zen-1234",
                    adapter_account="hooks",
                    name="Zen Co",
                    url="https://zen.example/hook",
                    secret="s" * 40,
                    mapping={"fields": {"title": "subject"}},
                )
                if schema is WEBHOOK
                else MailParticipant(
                    account_id="zen-1234",
                    adapter_account="mailgw",
                    name="Zen Co",
                    emails=["desk@zen.example"],
                )
            )
            session.commit()
    finally:
        engine.dispose()

    assert migrate.prepare(schema, url) == (migrate.head(schema), migrate.head(schema))
    engine = plain_engine(url)
    try:
        with Session(engine) as session:
            model = schema.participant_model()
            assert [p.name for p in session.exec(select(model)).all()] == ["Zen Co"]
            if schema is WEBHOOK:
                assert session.exec(select(WebhookOutbox)).all() == []
    finally:
        engine.dispose()


def test_the_node_chain_and_the_adapter_chains_share_a_database_apart(url: str) -> None:
    node_migrate.upgrade(url)
    migrate.prepare(EMAIL, url)
    migrate.prepare(WEBHOOK, url)
    engine = plain_engine(url)
    try:
        assert node_migrate.current(engine) == node_migrate.head()
        assert migrate.current(EMAIL, engine) == migrate.head(EMAIL)
        assert migrate.current(WEBHOOK, engine) == migrate.head(WEBHOOK)
    finally:
        engine.dispose()
    # Neither sees the other's tables as a difference (nor the other's version table).
    assert node_migrate.differences(url) == []
    assert migrate.differences(EMAIL, url) == []
    assert migrate.differences(WEBHOOK, url) == []
    assert not EMAIL.tables() & WEBHOOK.tables()
    assert not (EMAIL.tables() | WEBHOOK.tables()) & node_migrate.node_tables()


def test_the_db_commands_upgrade_and_report_both_chains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from account.cli import app  # with the adapters (adapters.cli adds them on import)
    from adapters import cli  # noqa: F401

    url = sqlite_url(tmp_path, "mailgw.db")
    monkeypatch.setenv("TIX_ACCOUNT_ID", "mailgw")
    monkeypatch.setenv("TIX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TIX_DATABASE_URL", url)
    runner = CliRunner()
    migrate.upgrade(EMAIL, url, EMAIL.first_revision)

    stale = runner.invoke(app, ["adapter", "email", "db", "current"])
    assert stale.exit_code == 0, stale.output
    assert "email_0001" in stale.output and "run `tix adapter email db upgrade`" in stale.output

    done = runner.invoke(app, ["adapter", "email", "db", "upgrade"])
    assert done.exit_code == 0, done.output
    assert f"→ {node_migrate.head()}" in done.output
    assert f"email adapter tables: email_0001 → {migrate.head(EMAIL)}" in done.output

    now = runner.invoke(app, ["adapter", "email", "db", "current"])
    assert now.exit_code == 0 and "up to date" in now.output, now.output
