"""The IMAP poller against a real Dovecot: each message is handed over once, flagged after."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from adapters.email.imap import poll_once
from adapters.email.inbound import Outcome
from adapters.email.settings import endpoint
from tests.support.mail import Dovecot


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _mail(n: int) -> bytes:
    return (
        f"From: chief@frost.example\r\nTo: tix+x@mail.tix.test\r\nSubject: reply {n}\r\n"
        f"Message-ID: <r{n}@frost.example>\r\n\r\nACCEPT\r\n"
    ).encode()


def test_a_message_is_flagged_seen_only_after_it_was_processed(dovecot: Dovecot) -> None:
    server = endpoint(dovecot.url)
    dovecot.append(_mail(1))
    dovecot.append(_mail(2))

    def crash(raw: bytes, sender: str | None, rcpts: tuple[str, ...]) -> Outcome:
        raise RuntimeError("the adapter died while processing")

    with pytest.raises(RuntimeError):
        poll_once(server, crash)
    assert dovecot.unseen() == 2  # nothing lost: both come again

    got: list[bytes] = []

    def process(raw: bytes, sender: str | None, rcpts: tuple[str, ...]) -> Outcome:
        got.append(raw)
        return Outcome("process")

    assert poll_once(server, process) == 2
    assert dovecot.unseen() == 0
    assert [b"Subject: reply 1" in raw for raw in got] == [True, False]
    assert b"Subject: reply 2" in got[1]
    assert poll_once(server, process) == 0  # nothing is read twice
    dovecot.append(_mail(3))
    assert poll_once(server, process) == 1 and len(got) == 3


def test_wrong_credentials_raise_and_leave_the_mailbox_alone(dovecot: Dovecot) -> None:
    dovecot.append(_mail(1))
    wrong = endpoint(dovecot.url.replace(dovecot.password, "wrong-password"))
    with pytest.raises(imaplib.IMAP4.error):
        poll_once(wrong, lambda raw, sender, rcpts: Outcome("process"))
    assert dovecot.unseen() == 1
