"""The durable mail queue against a real SMTP server (aiosmtpd, playing the remote MTA)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from adapters.email import models  # noqa: F401  (registers the adapter's tables)
from adapters.email.compose import Thread, compose
from adapters.email.models import MailOutbox
from adapters.email.sender import MailSender
from adapters.email.settings import endpoint
from tests.support.db import node_engine
from tests.support.mail import SmtpSink

SECRET = b"sender-test-secret-0123456789abcdef"


@pytest.fixture
def mail_engine(tmp_path: Path, db_backend: str) -> Iterator[Engine]:
    with node_engine(db_backend, tmp_path) as engine:
        yield engine


def _queue(engine: Engine, n: int) -> list[str]:
    ids = []
    with Session(engine) as session:
        for i in range(n):
            delegation_id = str(uuid.uuid4())
            composed = compose(
                kind="offer",
                language="en",
                values={"title": f"Ticket {i}", "upstream": "ACME", "participant": "CoolFix"},
                to=["dispatch@coolfix.example"],
                from_name="ACME",
                domain="mail.tix.test",
                local="tix",
                secret=SECRET,
                adapter_id="mailgw",
                thread=Thread(delegation_id=delegation_id, number=f"COOLFIX-{i}"),
            )
            session.add(
                MailOutbox(
                    message_id=composed.message_id,
                    account_id="coolfix",
                    delegation_id=delegation_id,
                    kind="offer",
                    recipients=composed.recipients,
                    raw=composed.raw,
                )
            )
            ids.append(composed.message_id)
        session.commit()
    return ids


def _rows(engine: Engine) -> list[MailOutbox]:
    with Session(engine) as session:
        return list(session.exec(select(MailOutbox).order_by(col(MailOutbox.id))).all())


async def _until(task: asyncio.Task[None], probe: object, what: str, timeout: float = 30.0) -> None:
    assert callable(probe)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not probe():
        if task.done():
            task.result()  # the loop died: show why
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_smtp_server_down_for_a_while_then_every_mail_is_delivered_once(
    mail_engine: Engine,
) -> None:
    sink = SmtpSink()  # its port is reserved, but nothing listens yet: the server is down
    message_ids = _queue(mail_engine, 3)
    sender = MailSender(
        mail_engine, endpoint(sink.url), "tix@mail.tix.test", poll_seconds=0.05, max_backoff=0.5
    )

    async def scenario() -> None:
        task = asyncio.create_task(sender.run())
        try:
            # Down: the mails stay queued, with the tries and the error recorded.
            await _until(
                task, lambda: all(r.tries >= 2 for r in _rows(mail_engine)[:1]), "failed tries"
            )
            rows = _rows(mail_engine)
            assert {r.state for r in rows} == {"pending"}
            assert rows[0].last_error and "Connection" in rows[0].last_error
            assert sink.messages == []
            sink.start()  # back
            await _until(
                task, lambda: {r.state for r in _rows(mail_engine)} == {"sent"}, "delivery"
            )
            # A few more rounds of the loop send nothing again.
            for _ in range(5):
                sender.wake()
                await asyncio.sleep(0.06)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sink.stop()

    asyncio.run(scenario())
    delivered = [str(m.message["Message-ID"]) for m in sink.messages]
    assert sorted(delivered) == sorted(message_ids)  # each once, none lost
    assert [m.rcpt_tos for m in sink.messages] == [("dispatch@coolfix.example",)] * 3
    assert all(r.sent_at is not None for r in _rows(mail_engine))


def test_a_recipient_the_server_refuses_for_good_is_marked_failed_not_retried(
    mail_engine: Engine,
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope
    from aiosmtpd.smtp import Session as SmtpSession

    class Refuser:
        async def handle_RCPT(
            self,
            server: SMTP,
            session: SmtpSession,
            envelope: Envelope,
            address: str,
            options: list[str],
        ) -> str:
            return "550 5.1.1 no such user"

    sink = SmtpSink()
    controller = Controller(Refuser(), hostname="127.0.0.1", port=sink.port, ready_timeout=10)
    controller.start()
    try:
        _queue(mail_engine, 1)
        sender = MailSender(mail_engine, endpoint(sink.url), "tix@mail.tix.test")
        assert asyncio.run(sender.drain()) == 0
    finally:
        controller.stop()
    (row,) = _rows(mail_engine)
    assert row.state == "failed" and row.last_error and "550" in row.last_error


def test_the_sender_survives_a_database_outage_and_delivers_afterwards(
    mail_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from adapters.email import sender as sender_module

    real_due = sender_module.due
    calls = {"n": 0}

    def flaky_due(engine: Engine, limit: int = 50) -> list[MailOutbox]:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OperationalError("SELECT", {}, Exception("database is away"))
        return real_due(engine, limit)

    monkeypatch.setattr(sender_module, "due", flaky_due)
    sink = SmtpSink()
    sink.start()
    (message_id,) = _queue(mail_engine, 1)
    sender = MailSender(mail_engine, endpoint(sink.url), "tix@mail.tix.test", max_backoff=0.2)

    async def scenario() -> None:
        task = asyncio.create_task(sender.run())
        try:
            await _until(task, lambda: len(sink.messages) == 1, "delivery after the outage")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sink.stop()

    asyncio.run(scenario())
    assert calls["n"] > 2
    assert [str(m.message["Message-ID"]) for m in sink.messages] == [message_id]
