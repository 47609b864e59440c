"""Delivering queued mails over SMTP: in order, with backoff while the server is away.

The loop takes pending rows of ``MailOutbox`` whose time has come, in ``id`` order, and hands each
to the SMTP server (``TIX_SMTP_URL``). A row is marked ``sent`` only after the server answered
250 to the message data; until then it stays ``pending`` in the database, so a stopped server,
a crash or a restart loses nothing. While the server cannot be reached the loop backs off with
tenacity's jittered exponential wait and tries again; nothing is skipped.

At-least-once edge: if the process dies after the server's 250 and before the row is marked,
the mail is sent again after the restart, with the same Message-ID (mail clients and most
servers show it once). There is no way to close that gap with SMTP: the mark cannot share a
transaction with the remote server.

A permanent refusal (5xx for the sender, the data or every recipient) marks the row ``failed``
with the server's answer; it is not retried.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from adapters.email.models import MailOutbox
from adapters.email.settings import Endpoint
from exchange.clock import utcnow

log = logging.getLogger("tix.email.sender")

BATCH = 50
SMTP_TIMEOUT = 30.0


class SmtpUnavailable(Exception):
    """The server could not be reached or answered with a temporary error: try again later."""


class SmtpRefused(Exception):
    """The server refused the mail for good."""


def due(engine: Engine, limit: int = BATCH) -> list[MailOutbox]:
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.exec(
                select(MailOutbox)
                .where(MailOutbox.state == "pending", MailOutbox.next_try_at <= utcnow())
                .order_by(col(MailOutbox.id))
                .limit(limit)
            ).all()
        )


def deliver(server: Endpoint, sender: str, row: MailOutbox) -> None:
    """Hand one mail to the SMTP server; return only after its 250 for the data."""
    try:
        client: smtplib.SMTP
        if server.scheme == "smtps":
            client = smtplib.SMTP_SSL(
                server.host,
                server.port,
                timeout=SMTP_TIMEOUT,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo_or_helo_if_needed()
            if server.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if server.username:
                client.login(server.username, server.password)
            # The row's own envelope sender: its reply address, or "" (<>) for notices.
            mail_from = row.envelope_from if row.envelope_from or row.kind == "notice" else sender
            refused = client.sendmail(mail_from, row.recipients, row.raw)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise SmtpUnavailable(f"recipients deferred: {exc.recipients}") from exc
        raise SmtpRefused(f"recipients refused: {exc.recipients}") from exc
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        if 400 <= exc.smtp_code < 500:
            raise SmtpUnavailable(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        raise SmtpRefused(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if refused:
        log.warning("mail %s refused for some recipients: %s", row.message_id, refused)


def mark(engine: Engine, row_id: int, state: str, error: str | None = None) -> None:
    with Session(engine) as session:
        row = session.get(MailOutbox, row_id)
        if row is None:
            return
        row.tries += 1
        row.state = state
        row.last_error = error[:500] if error else None
        if state == "sent":
            row.sent_at = utcnow()
        session.add(row)
        session.commit()


def note_retry(engine: Engine, row_id: int, error: str, wait: float) -> None:
    with Session(engine) as session:
        row = session.get(MailOutbox, row_id)
        if row is None:
            return
        row.tries += 1
        row.last_error = error[:500]
        row.next_try_at = utcnow() + timedelta(seconds=wait)
        session.add(row)
        session.commit()


class MailSender:
    """The background loop; ``wake`` makes it look at the queue at once."""

    def __init__(
        self,
        engine: Engine,
        server: Endpoint,
        envelope_sender: str,
        *,
        poll_seconds: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        self.engine = engine
        self.server = server
        self.envelope_sender = envelope_sender
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        self.sent = 0
        self.status = "idle"
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look at the queue now; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Drain forever: back off while the server is away, survive a database outage."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while True:
            try:
                async for attempt in AsyncRetrying(
                    wait=wait_exponential(multiplier=0.2, max=self.max_backoff)
                    + wait_random(0, 0.2),
                    retry=retry_if_exception_type(SmtpUnavailable),
                ):
                    with attempt:
                        await self.drain()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: the rows wait there, try again later
                failures += 1
                log.exception("mail sender failed; trying again")
                await asyncio.sleep(min(self.max_backoff, 0.5 * 2 ** min(failures, 8)))
            self._wake.clear()
            try:
                # Not asyncio.wait_for: on Python 3.11 it can drop a cancel that meets the
                # wake-up (see tests/unit/test_relay_cancel.py).
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def drain(self) -> int:
        """Send every due row; ``SmtpUnavailable`` (row stays pending) when the server is away."""
        count = 0
        while True:
            rows = await asyncio.to_thread(due, self.engine)
            if not rows:
                return count
            for row in rows:
                assert row.id is not None
                try:
                    await asyncio.to_thread(deliver, self.server, self.envelope_sender, row)
                except SmtpUnavailable as exc:
                    self.status = "down"
                    log.warning("SMTP server unavailable, mail %s waits: %s", row.message_id, exc)
                    await asyncio.to_thread(note_retry, self.engine, row.id, str(exc), 0.0)
                    raise
                except SmtpRefused as exc:
                    log.error("SMTP server refused mail %s: %s", row.message_id, exc)
                    await asyncio.to_thread(mark, self.engine, row.id, "failed", str(exc))
                    continue
                self.status = "up"
                await asyncio.to_thread(mark, self.engine, row.id, "sent")
                self.sent += 1
                count += 1
