"""The adapter's SMTP listener: who it takes mail for, and what it answers when it cannot."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from account.config import Settings
from adapters.email.inbound import InboundProcessor, Outcome
from adapters.email.listener import InboundHandler, start_listener
from adapters.email.outbound import Mailer
from adapters.email.settings import MailSettings

MAIL = (
    b"From: chief@frost.example\r\nTo: tix+abc@mail.tix.test\r\nSubject: hi\r\n"
    b"Message-ID: <m1@frost.example>\r\n\r\nACCEPT\r\n"
)


def _serve(process: Callable[[bytes, str | None, tuple[str, ...]], Outcome]) -> Callable[..., None]:
    """Run a listener in a private loop for the duration of ``client(port)``."""

    def run(client: Callable[[int], None]) -> None:
        async def scenario() -> None:
            server = await start_listener("127.0.0.1", 0, InboundHandler("mail.tix.test", process))
            port = server.sockets[0].getsockname()[1]
            try:
                await asyncio.to_thread(client, port)
            finally:
                server.close()
                await server.wait_closed()

        asyncio.run(scenario())

    return run


def test_mail_for_our_domain_is_processed_with_its_envelope() -> None:
    seen: list[tuple[bytes, str | None, tuple[str, ...]]] = []

    def process(raw: bytes, sender: str | None, rcpts: tuple[str, ...]) -> Outcome:
        seen.append((raw, sender, rcpts))
        return Outcome("process")

    def client(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("chief@frost.example", ["tix+abc@MAIL.tix.test"], MAIL)
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.sendmail("chief@frost.example", ["someone@elsewhere.example"], MAIL)
            assert refused.value.recipients["someone@elsewhere.example"][0] == 550
            smtp.sendmail("", ["tix@mail.tix.test"], MAIL)  # a null sender (a bounce)

    _serve(process)(client)
    assert [(s, r) for _, s, r in seen] == [
        ("chief@frost.example", ("tix+abc@MAIL.tix.test",)),
        ("", ("tix@mail.tix.test",)),
    ]
    assert seen[0][0].replace(b"\r\n", b"\n").endswith(b"ACCEPT\n")


def test_a_database_failure_answers_451_so_the_sending_server_tries_again(
    tmp_path: Path,
) -> None:
    mail = MailSettings(mail_domain="mail.tix.test")
    processor = InboundProcessor(
        # Nothing listens on port 1: every query fails the way a database outage does.
        engine=create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none"),
        settings=Settings(account_id="mailgw", data_dir=tmp_path),
        mail=mail,
        mailer=Mailer(mail=mail, secret=b"listener-test-secret-0123456789ab", adapter_id="m"),
        identities={},
    )
    with pytest.raises(OperationalError):
        processor.process(MAIL)

    def process(raw: bytes, sender: str | None, rcpts: tuple[str, ...]) -> Outcome:
        return processor.process(raw, envelope_sender=sender, envelope_recipients=rcpts)

    def client(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                smtp.sendmail("chief@frost.example", ["tix+abc@mail.tix.test"], MAIL)
            assert failed.value.smtp_code == 451

    _serve(process)(client)
