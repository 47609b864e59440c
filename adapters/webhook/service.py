"""The webhook adapter inside a node process: hosted identities, the hook, the sender.

``WebhookAdapter`` is a ``HostedAdapter`` (``adapters.hosting``: one hosted account per
participant in the node's runtime, picked up while it runs too); it installs
``outbound.on_applied`` as the runtime's ``on_applied`` hook, runs the sender, and applies the
help desks' signed requests (``receive``).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from account.context import NodeContext
from account.errors import Invalid, InvalidCredentials
from account.node import NodeRuntime
from adapters.hosting.service import HostedAdapter
from adapters.webhook import inbound, outbound, sender, signing
from adapters.webhook.models import WebhookParticipant
from adapters.webhook.settings import WebhookSettings
from exchange.clock import utcnow


class WebhookAdapter(HostedAdapter):
    participant_model = WebhookParticipant
    channel = "webhook"

    def __init__(self, ctx: NodeContext, runtime: NodeRuntime, settings: WebhookSettings) -> None:
        super().__init__(ctx, runtime)
        self.settings = settings
        runtime.on_applied = outbound.on_applied
        self.load_participants()

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

    async def start_channel(self) -> None:
        self.spawn(
            sender.run(self.ctx.engine, self.settings, self.ctx.settings.egress_policy),
            "tix-webhooks",
        )


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "request")
        return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg"))
    return "the body is not JSON"
