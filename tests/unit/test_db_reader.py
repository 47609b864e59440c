"""The relay's reader connection (``account.db.reader_for``) on SQLite: it sees every committed
row and never queues behind the node's one write connection."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from account.context import Identity
from account.db import create_tables, make_engine, reader_for, session_scope
from account.messaging import outbox
from account.messaging import relay as relay_module
from exchange.clock import instant, utcnow
from exchange.signing import generate_key
from schemas import messages as m


def enqueue_comment(engine_url: str, identity: Identity, to: str) -> str:
    engine = make_engine(engine_url)
    try:
        with session_scope(engine) as session:
            row = outbox.enqueue(
                session=session,
                identity=identity,
                to=to,
                link_id=str(uuid.uuid4()),
                message_type="ticket.comment",
                subject=str(uuid.uuid4()),
                seq=1,
                body=m.TicketComment(
                    comment_id=str(uuid.uuid4()),
                    author="e",
                    body="hi",
                    created_at=instant(utcnow()),
                ),
            )
            return row.message_id
    finally:
        engine.dispose()


def test_the_relay_reads_its_batch_while_the_write_connection_is_held(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    engine = make_engine(url)
    create_tables(engine)
    identity = Identity(account_id="acme", label="ACME", key=generate_key())
    first = enqueue_comment(url, identity, "x")
    reader = reader_for(engine)
    assert reader is not engine
    assert reader_for(engine) is reader, "one reader per engine"

    with engine.connect() as writer:  # the node's only write connection, mid-transaction
        writer.execute(text("UPDATE outboxmessage SET tries = tries"))
        due = relay_module._due(reader, 10)
        assert [row.message_id for row in due] == [first]
        with pytest.raises(OperationalError, match=r"readonly|read-only|query_only"):
            with reader.connect() as conn:
                conn.execute(text("DELETE FROM outboxmessage"))
        writer.rollback()

    second = enqueue_comment(url, identity, "y")  # committed by another connection
    assert [row.message_id for row in relay_module._due(reader, 10)] == [first, second]
    reader.dispose()
    engine.dispose()


def test_an_in_memory_database_has_no_second_connection() -> None:
    engine = make_engine("sqlite:///:memory:")
    assert reader_for(engine) is engine
    engine.dispose()
