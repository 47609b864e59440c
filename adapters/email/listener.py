"""The adapter's own SMTP listener (aiosmtpd on ``TIX_SMTP_LISTEN``).

It takes mail only for the adapter's domain (other recipients get 550: it is not a relay), at
most ``MAX_BYTES`` per message, and hands each message to the inbound processor in a worker
thread. The server answers 250 after the processor committed, so a mail the database could not
take (a 451 answer) stays with the sending server, which tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.email.inbound import Outcome

log = logging.getLogger("tix.email.listener")

MAX_BYTES = 25 * 1024 * 1024

Process = Callable[[bytes, str | None, tuple[str, ...]], Outcome]


class InboundHandler:
    """aiosmtpd handler: recipient check, then the processor."""

    def __init__(self, domain: str, process: Process) -> None:
        self.domain = domain.lower()
        self.process = process
        self.received = 0

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.rpartition("@")[2].lower() != self.domain:
            return "550 5.7.1 not a recipient here"
        if len(envelope.rcpt_tos) >= 20:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        sender = envelope.mail_from
        try:
            outcome = await asyncio.to_thread(
                self.process, raw, "" if sender in ("", "<>") else sender, tuple(envelope.rcpt_tos)
            )
        except Exception:
            log.exception("inbound mail failed")
            return "451 4.3.0 try again later"
        self.received += 1
        log.debug("inbound mail: %s", outcome)
        return "250 OK"


async def start_listener(
    host: str, port: int, handler: InboundHandler
) -> asyncio.base_events.Server:
    """Serve SMTP on ``host:port`` in the running loop; the caller closes the server."""
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=MAX_BYTES,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="tix-email-adapter",
        )

    return await loop.create_server(factory, host=host, port=port)
