"""The webhook adapter inside a node process: hosted identities, the hook, the sender.

``WebhookAdapter`` is built on an ordinary node (``NodeContext`` and ``NodeRuntime``): it hosts
one account per participant in the runtime, installs ``outbound.on_applied`` as the runtime's
``on_applied`` hook, runs the sender, and picks up participants created while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from account.context import Identity, NodeContext
from account.errors import Invalid, InvalidCredentials
from account.node import NodeRuntime
from adapters.webhook import inbound, outbound, participants, sender, signing
from adapters.webhook.models import WebhookParticipant
from adapters.webhook.settings import WebhookSettings
from exchange.clock import utcnow

log = logging.getLogger("tix.webhook")

SYNC_SECONDS = 2.0


class WebhookAdapter:
    def __init__(self, ctx: NodeContext, runtime: NodeRuntime, settings: WebhookSettings) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.settings = settings
        runtime.on_applied = outbound.on_applied
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.load_participants()

    def load_participants(self) -> list[Identity]:
        """Host every participant not hosted yet; return the new ones."""
        with Session(self.ctx.engine) as session:
            rows = session.exec(
                select(WebhookParticipant).where(
                    WebhookParticipant.adapter_account == self.ctx.account_id
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
            self.runtime.identities[identity.account_id] = identity
            added.append(identity)
        return added

    def host(self, identity: Identity) -> None:
        """Start consuming for a new participant; safe to call from any thread."""
        self.runtime.identities[identity.account_id] = identity
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.runtime.host, identity)

    def receive(self, account_id: str, header: str | None, body: bytes) -> dict[str, Any]:
        """One signed request from a help desk; 401 unless authentic, fresh and new."""
        with Session(self.ctx.engine, expire_on_commit=False) as session:
            participant = session.exec(
                select(WebhookParticipant).where(
                    WebhookParticipant.account_id == account_id,
                    WebhookParticipant.adapter_account == self.ctx.account_id,
                )
            ).first()
            identity = self.runtime.identities.get(account_id)
            if participant is None or identity is None:
                raise InvalidCredentials("signature does not match")
            try:
                inbound.authenticate(
                    session,
                    participant,
                    header,
                    body,
                    now=int(utcnow().timestamp()),
                    tolerance=self.settings.tolerance_seconds,
                )
            except signing.BadSignature as exc:
                raise InvalidCredentials(exc.reason) from exc
            try:
                request = inbound.Inbound.model_validate({"request": json.loads(body)}).request
            except (ValueError, ValidationError) as exc:
                raise Invalid(_why(exc)) from exc
            ticket = inbound.apply(
                session=session,
                identity=identity,
                settings=self.ctx.settings,
                participant=participant,
                request=request,
            )
            session.commit()
        self.ctx.wake_relay()
        return {"ok": True, "ticket": ticket}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks.append(
            asyncio.create_task(sender.run(self.ctx.engine, self.settings), name="tix-webhooks")
        )
        self._tasks.append(asyncio.create_task(self._sync(), name="tix-webhook-sync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _sync(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                added = await asyncio.to_thread(self.load_participants)
            except Exception:
                log.exception("participant check failed")
                continue
            if added:
                self.runtime.host(added[0])  # one reconnect declares every new inbox


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "request")
        return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg"))
    return "the body is not JSON"
