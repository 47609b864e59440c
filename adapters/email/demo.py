"""The demo's last level as an e-mail participant: the mails travel over real SMTP.

``EmailLeaf`` runs, inside the demo's process, an adapter node (its own account, database and
transport, the same broker as the other companies), its SMTP listener on a free loopback port,
and an aiosmtpd server as the participant's mailbox. The participant reads the offer in that
mailbox and answers by SMTP to the adapter, as a person with a mail client would: ``ACCEPT``,
``START`` with a comment, ``RESOLVED <summary>``; the GC's confirmation comes back as a mail.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
from email.message import EmailMessage

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session

from account.bootstrap import init_node
from account.config import Settings
from account.demo import LeafSetup, Participant
from account.node import NodeRuntime
from adapters.email import SCHEMA, views
from adapters.email.service import EmailAdapter
from adapters.email.settings import MailSettings
from adapters.hosting import server as hosting_server

WAIT_SECONDS = 30.0


class _Mailbox:
    """The participant's mailbox: an SMTP server that keeps what it gets."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        msg = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def find(self, subject_part: str) -> EmailMessage | None:
        for msg in self.messages:
            if subject_part in str(msg["Subject"]):
                return msg
        return None


class EmailLeaf:
    """The ``Participant`` of the demo's protocol for a company that works by e-mail."""

    def __init__(self, setup: LeafSetup) -> None:
        self.setup = setup
        self.mailbox_address = f"dispatch@{setup.account}.example"
        self._label = setup.label
        self._account_id = ""
        self.mailbox = _Mailbox()
        self.servers: list[asyncio.base_events.Server] = []
        self.adapter: EmailAdapter | None = None
        self.runtime: NodeRuntime | None = None
        self.client: httpx.AsyncClient | None = None
        self.listen_port = 0
        self.offer: EmailMessage | None = None
        self.replies: list[str] = []

    @property
    def account_id(self) -> str:
        return self._account_id

    @property
    def label(self) -> str:
        return self._label

    def accounts(self) -> list[str]:
        gateway = self.runtime.ctx.account_id if self.runtime else ""
        return [a for a in (gateway, self._account_id) if a]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        mailbox_server = await loop.create_server(
            lambda: SMTP(self.mailbox, hostname="eastwood-mx"), host="127.0.0.1", port=0
        )
        self.servers.append(mailbox_server)
        mailbox_port = mailbox_server.sockets[0].getsockname()[1]
        s = self.setup
        settings = Settings(
            account_id=f"mailgw-{s.run}",
            display_name="Tix mail gateway",
            data_dir=s.workdir / "mailgw",
            database_url="",
            transport="amqp" if s.transport == "amqp" else "inprocess",
            amqp_url=s.amqp_url,
            relay_poll_seconds=0.2,
        )
        init_node(settings, admin="admin", password=s.password)
        mail = MailSettings(
            mail_domain="mail.demo.test",
            smtp_url=f"smtp://127.0.0.1:{mailbox_port}",
            smtp_listen="127.0.0.1:0",
            mail_poll_seconds=0.1,
        )
        ctx, self.runtime = hosting_server.node_for(settings, SCHEMA, s.broker)
        self.adapter = EmailAdapter(ctx, self.runtime, mail)
        app = hosting_server.app_for(self.adapter, views.router)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://mailgw.demo"
        )
        await self.runtime.start()
        await self.adapter.start()
        assert self.adapter.listen_port is not None
        self.listen_port = self.adapter.listen_port
        response = await self.client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": s.password}
        )
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    async def _wait_mail(self, subject_part: str) -> EmailMessage:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while (msg := self.mailbox.find(subject_part)) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no mail '{subject_part}' in {self.mailbox_address}")
            await asyncio.sleep(0.02)
        return msg

    async def _reply(self, text: str) -> None:
        assert self.offer is not None
        reply = EmailMessage()
        reply["From"] = f"{self.label} dispatch <{self.mailbox_address}>"
        reply["To"] = str(self.offer["Reply-To"])
        reply["Subject"] = "Re: " + str(self.offer["Subject"])
        reply["Message-ID"] = email.utils.make_msgid(domain="eastwood.example")
        reply["In-Reply-To"] = str(self.offer["Message-ID"])
        reply["References"] = str(self.offer["Message-ID"])
        reply.set_content(text + "\n\nOn Monday, Tix wrote:\n> (the offer)\n")
        raw = reply.as_bytes(policy=email.policy.SMTP)

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.listen_port, timeout=30) as client:
                client.sendmail(self.mailbox_address, [str(reply["To"])], raw)

        await asyncio.to_thread(send)
        self.replies.append(text.splitlines()[0])

    # -- the demo's protocol --------------------------------------------------------------------

    async def join(self, token: str) -> None:
        assert self.client is not None
        response = await self.client.post(
            "/api/v1/participants",
            json={
                "token": token,
                "name": self.label,
                "emails": [self.mailbox_address],
                "language": "en",
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"participant: {response.status_code} {response.text}")
        self._account_id = str(response.json()["account_id"])

    async def wait_offer(self) -> str:
        self.offer = await self._wait_mail("New ticket")
        subject = str(self.offer["Subject"])
        return subject[1 : subject.index("]")]

    async def accept(self, number: str) -> None:
        await self._reply("ACCEPT\nWe will send an engineer this morning.")

    async def work_and_resolve(self, number: str) -> None:
        await self._reply("START\nEngineer on site, replacing the card reader.")
        await self._reply("RESOLVED Card reader replaced, tested OK.")

    async def confirmed(self, number: str) -> bool:
        return self.mailbox.find("Resolution confirmed") is not None

    def summary(self) -> str:
        sent = len(self.replies)
        got = len(self.mailbox.messages)
        return (
            f"{self.label} took part by e-mail: {got} mails in {self.mailbox_address} "
            f"({', '.join(str(m['Subject']).strip() for m in self.mailbox.messages)}), "
            f"{sent} replies by SMTP to the adapter ({', '.join(self.replies)})"
        )

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()
        if self.runtime is not None:
            await self.runtime.stop()
        if self.client is not None:
            await self.client.aclose()
        for server in self.servers:
            server.close()


async def email_leaf(setup: LeafSetup) -> Participant:
    """The factory ``account.demo.register_leaf`` takes."""
    leaf = EmailLeaf(setup)
    try:
        await leaf.start()
    except BaseException:
        await leaf.stop()
        raise
    return leaf


__all__ = ["EmailLeaf", "email_leaf"]
