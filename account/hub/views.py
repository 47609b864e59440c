"""Node endpoints for the hub: register, search the directory, invite through the hub, and the
incoming invitations (``/api/v1/links/incoming``, routed before ``/api/v1/links/{link_id}``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from account.deps import AdminUser, ContextDep, SessionDep
from account.hub import service
from account.links import service as link_service
from account.links.models import Contract, InvitationCreate

router = APIRouter(tags=["hub"])


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["amqp", "email", "webhook"] = "amqp"


class HubInvite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=2, max_length=63)
    contract: Contract = Field(default_factory=Contract)
    expires_in_days: int = Field(default=7, ge=1, le=90)
    note: str = Field(default="", max_length=500)


@router.post("/api/v1/hub/register")
async def register(ctx: ContextDep, user: AdminUser, body: Register | None = None) -> Any:
    return await service.register(ctx, transport=(body or Register()).transport)


@router.get("/api/v1/hub/directory")
async def directory(
    ctx: ContextDep,
    user: AdminUser,
    q: str = Query(default="", max_length=100),
    limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    items = await service.search(ctx, q, limit=limit)
    return {"items": items, "total": len(items)}


@router.post("/api/v1/hub/invitations", status_code=status.HTTP_201_CREATED)
async def invite(
    ctx: ContextDep, session: SessionDep, user: AdminUser, body: HubInvite
) -> dict[str, Any]:
    invitation_in = InvitationCreate(
        contract=body.contract, expires_in_days=body.expires_in_days, note=body.note
    )
    return await service.invite(
        ctx, session, to=body.to, invitation_in=invitation_in, note=body.note
    )


class Decline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


@router.get("/api/v1/hub/invitations")
async def sent(
    ctx: ContextDep, user: AdminUser, limit: int = Query(default=50, ge=1, le=200)
) -> dict[str, Any]:
    """Invitations this node sent through the hub with what became of them (the hub is asked
    for news first; ``synced`` is false when it did not answer)."""
    return await service.sent(ctx, limit=limit)


@router.get("/api/v1/links/incoming")
async def incoming(ctx: ContextDep, user: AdminUser) -> dict[str, Any]:
    items = await service.incoming(ctx)
    return {"items": items, "total": len(items)}


@router.post("/api/v1/links/incoming/{invitation_id}/accept", status_code=201)
async def accept_incoming(
    ctx: ContextDep, session: SessionDep, user: AdminUser, invitation_id: str
) -> dict[str, Any]:
    link = await service.accept_incoming(ctx, session, invitation_id)
    return link_service.to_public(link)


@router.post("/api/v1/links/incoming/{invitation_id}/decline")
async def decline_incoming(
    ctx: ContextDep, user: AdminUser, invitation_id: str, body: Decline | None = None
) -> dict[str, Any]:
    """Decline; the optional ``reason`` reaches the sender's node through the hub."""
    return await service.decline_incoming(ctx, invitation_id, reason=(body or Decline()).reason)
