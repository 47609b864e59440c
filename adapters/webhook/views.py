"""``/api/v1/webhook-participants`` (the adapter's admin) and the help desks' inbound endpoint."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, status

from account.deps import AdminUser, ContextDep, SessionDep, commit
from adapters.hosting.views import adapter_of, host_new, listing
from adapters.webhook import participants, signing
from adapters.webhook.models import WebhookParticipant
from adapters.webhook.participants import ParticipantCreate, ParticipantPatch, SecretRoll
from adapters.webhook.service import WebhookAdapter
from exchange.clock import utcnow

router = APIRouter(tags=["webhook participants"])


@router.post("/api/v1/webhook-participants", status_code=status.HTTP_201_CREATED)
def create_participant(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    participant_in: ParticipantCreate,
) -> dict[str, Any]:
    """Host a help desk and accept the upstream's invitation as it; the secret is shown once."""
    created = participants.create(
        session=session,
        settings=ctx.settings,
        adapter=ctx.identity,
        participant_in=participant_in,
        allowed_hosts=adapter_of(request, WebhookAdapter).settings.allowed_hosts,
    )
    participant = host_new(request, session, ctx, created)
    return participants.to_public(participant) | {"secret": participant.secret}


@router.get("/api/v1/webhook-participants")
def list_participants(ctx: ContextDep, session: SessionDep, _admin: AdminUser) -> dict[str, Any]:
    return listing(session, ctx, WebhookParticipant, participants.to_public)


@router.patch("/api/v1/webhook-participants/{account_id}")
def update_participant(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    account_id: str,
    patch: ParticipantPatch,
) -> dict[str, Any]:
    """Change a participant's URL or mapping."""
    participant = participants.get(session=session, adapter=ctx.identity, account_id=account_id)
    participants.update(
        session=session,
        participant=participant,
        patch=patch,
        allowed_hosts=adapter_of(request, WebhookAdapter).settings.allowed_hosts,
    )
    commit(session, ctx)
    return participants.to_public(participant)


@router.post("/api/v1/webhook-participants/{account_id}/secret/rotate")
def rotate_secret(
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    account_id: str,
    roll: SecretRoll | None = None,
) -> dict[str, Any]:
    """A new secret for the help desk, shown once; the old one stays valid for the overlap."""
    participant = participants.get(session=session, adapter=ctx.identity, account_id=account_id)
    participants.rotate_secret(
        session=session,
        participant=participant,
        overlap=timedelta(seconds=(roll or SecretRoll()).overlap_seconds),
        now=utcnow(),
    )
    commit(session, ctx)
    return participants.to_public(participant) | {"secret": participant.secret}


@router.post("/webhooks/{account_id}/inbound")
async def inbound(request: Request, account_id: str) -> dict[str, Any]:
    """A help desk's answer, signed like the adapter's webhooks (``X-Tix-Signature``)."""
    body = await request.body()
    header = request.headers.get(signing.HEADER)
    return await asyncio.to_thread(
        adapter_of(request, WebhookAdapter).receive, account_id[:63], header, body
    )
