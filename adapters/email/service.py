"""The e-mail adapter inside a node process: hosted identities, sender, listener, poller.

``EmailAdapter`` is a ``HostedAdapter`` (``adapters.hosting``: one hosted account per
participant in the node's runtime, picked up while it runs too); it installs ``Mailer.on_applied``
as the runtime's ``on_applied`` hook, and runs the SMTP sender loop, the inbound SMTP listener
and the IMAP poller.
"""

from __future__ import annotations

import asyncio
import contextlib

from account.context import Identity, NodeContext
from account.node import NodeRuntime
from adapters.email.imap import poll_loop
from adapters.email.inbound import InboundProcessor, Outcome
from adapters.email.listener import InboundHandler, start_listener
from adapters.email.models import MailParticipant
from adapters.email.outbound import Mailer
from adapters.email.sender import MailSender
from adapters.email.settings import MailSettings, endpoint, listen_address, reply_secret
from adapters.hosting.service import HostedAdapter


class EmailAdapter(HostedAdapter):
    participant_model = MailParticipant
    channel = "email"

    def __init__(self, ctx: NodeContext, runtime: NodeRuntime, mail: MailSettings) -> None:
        super().__init__(ctx, runtime)
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
        self.load_participants()

    def on_hosted(self, identities: list[Identity]) -> None:
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

    async def start_channel(self) -> None:
        self.spawn(self.sender.run(), "tix-mail-sender")
        if self.mail.smtp_listen:
            host, port = listen_address(self.mail.smtp_listen)
            handler = InboundHandler(self.mail.mail_domain, self.process)
            self.listener = await start_listener(host, port, handler)
            self.listen_port = self.listener.sockets[0].getsockname()[1]
            self.log.info("SMTP listener on %s:%s", host, self.listen_port)
        if self.mail.imap_url:
            poller = poll_loop(
                endpoint(self.mail.imap_url), self.process, interval=self.mail.imap_poll_seconds
            )
            self.spawn(poller, "tix-imap-poller")

    async def stop_channel(self) -> None:
        if self.listener is not None:
            self.listener.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.listener.wait_closed(), timeout=5)
