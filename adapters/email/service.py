"""The e-mail adapter inside a node process: hosted identities, sender, listener, poller.

``EmailAdapter`` is built on an ordinary node (``NodeContext`` and ``NodeRuntime``): it hosts one
account per participant in the runtime (``NodeRuntime.host``), installs ``Mailer.on_applied`` as
the runtime's ``on_applied`` hook, and runs the SMTP sender loop, the inbound SMTP listener and
the IMAP poller as background tasks. Participants created from the CLI while the adapter runs
are picked up by a periodic check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlmodel import Session, select

from account.context import Identity, NodeContext
from account.node import NodeRuntime
from adapters.email import participants
from adapters.email.imap import poll_loop
from adapters.email.inbound import InboundProcessor, Outcome
from adapters.email.listener import InboundHandler, start_listener
from adapters.email.models import MailParticipant
from adapters.email.outbound import Mailer
from adapters.email.sender import MailSender
from adapters.email.settings import MailSettings, endpoint, listen_address, reply_secret

log = logging.getLogger("tix.email")

SYNC_SECONDS = 2.0


class EmailAdapter:
    def __init__(self, ctx: NodeContext, runtime: NodeRuntime, mail: MailSettings) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.mail = mail
        self.mailer = Mailer(mail=mail, secret=reply_secret(ctx.secret), adapter_id=ctx.account_id)
        self.processor = InboundProcessor(
            engine=ctx.engine,
            settings=ctx.settings,
            mail=mail,
            mailer=self.mailer,
            identities=runtime.identities,
        )
        self.sender = MailSender(
            ctx.engine,
            endpoint(mail.smtp_url),
            mail.from_address,
            poll_seconds=mail.mail_poll_seconds,
            max_backoff=mail.mail_max_backoff_seconds,
        )
        runtime.on_applied = self.mailer.on_applied
        self.listener: asyncio.base_events.Server | None = None
        self.listen_port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.load_participants()

    # -- hosted accounts ----------------------------------------------------------------------

    def load_participants(self, *, host: bool = True) -> list[Identity]:
        """Participants not hosted yet; hosts them too unless ``host`` is False.

        The background check passes ``host=False`` (it runs in a worker thread) and hosts them
        in the event loop, where the runtime reads its identities.
        """
        with Session(self.ctx.engine) as session:
            rows = session.exec(
                select(MailParticipant).where(
                    MailParticipant.adapter_account == self.ctx.account_id
                )
            ).all()
        added = []
        for row in rows:
            if row.account_id in self.runtime.identities:
                continue
            try:
                identity = participants.load_identity(self.ctx.settings, row)
            except Exception as exc:
                log.error("cannot host %s: %s", row.account_id, exc)
                continue
            if host:
                self.runtime.identities[identity.account_id] = identity
            added.append(identity)
        return added

    def host(self, identity: Identity) -> None:
        """Start consuming for a new participant; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.runtime.host, identity)
        self.sender.wake()

    def process(
        self, raw: bytes, envelope_sender: str | None, envelope_recipients: tuple[str, ...]
    ) -> Outcome:
        outcome = self.processor.process(
            raw, envelope_sender=envelope_sender, envelope_recipients=envelope_recipients
        )
        self.ctx.wake_relay()
        self.sender.wake()
        return outcome

    # -- background tasks ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self.sender.run(), name="tix-mail-sender"))
        self._tasks.append(asyncio.create_task(self._sync(), name="tix-mail-sync"))
        if self.mail.smtp_listen:
            host, port = listen_address(self.mail.smtp_listen)
            handler = InboundHandler(self.mail.mail_domain, self.process)
            self.listener = await start_listener(host, port, handler)
            self.listen_port = self.listener.sockets[0].getsockname()[1]
            log.info("SMTP listener on %s:%s", host, self.listen_port)
        if self.mail.imap_url:
            self._tasks.append(
                asyncio.create_task(
                    poll_loop(
                        endpoint(self.mail.imap_url),
                        self.process,
                        interval=self.mail.imap_poll_seconds,
                    ),
                    name="tix-imap-poller",
                )
            )

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.listener.wait_closed(), timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _sync(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                added = await asyncio.to_thread(self.load_participants, host=False)
            except Exception:
                log.exception("participant check failed")
                continue
            for identity in added:
                log.info("hosting e-mail participant %s", identity.account_id)
                self.runtime.host(identity)  # in the loop; one reconnect takes them all
            if added:
                self.sender.wake()
