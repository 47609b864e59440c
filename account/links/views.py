"""Link endpoints: invitations, accepting one, listing links, suspending and contracts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from account.delegations import service as delegation_service
from account.deps import AdminUser, ContextDep, SessionDep, commit
from account.links import service as link_service
from account.links.models import InvitationAccept, InvitationCreate, InvitationCreated, LinkPatch
from exchange.clock import instant

router = APIRouter(prefix="/api/v1/links", tags=["links"])


@router.post("/invitations", status_code=status.HTTP_201_CREATED)
def create_invitation(
    ctx: ContextDep, session: SessionDep, user: AdminUser, invitation_in: InvitationCreate
) -> InvitationCreated:
    invitation, token = link_service.create_invitation(
        session=session,
        identity=ctx.identity,
        invitation_in=invitation_in,
        api_url=ctx.settings.public_url or None,
    )
    commit(session, ctx)
    return InvitationCreated(
        token=token,
        invitation_id=invitation.id,
        link_id=invitation.link_id,
        expires_at=instant(invitation.expires_at),
    )


@router.post("/accept", status_code=status.HTTP_201_CREATED)
def accept_invitation(
    ctx: ContextDep, session: SessionDep, user: AdminUser, accept_in: InvitationAccept
) -> dict[str, Any]:
    link = link_service.accept_invitation(
        session=session,
        identity=ctx.identity,
        token=accept_in.token,
        api_url=ctx.settings.public_url or None,
    )
    commit(session, ctx)
    return link_service.to_public(link)


@router.get("")
def list_links(ctx: ContextDep, session: SessionDep, user: AdminUser) -> dict[str, Any]:
    links = link_service.list_links(session=session, account_id=ctx.account_id)
    return {"items": [link_service.to_public(link) for link in links], "total": len(links)}


@router.get("/{link_id}")
def get_link(ctx: ContextDep, session: SessionDep, user: AdminUser, link_id: str) -> dict[str, Any]:
    link = link_service.get(session=session, account_id=ctx.account_id, link_id=link_id)
    return link_service.to_public(link)


@router.patch("/{link_id}")
def patch_link(
    ctx: ContextDep, session: SessionDep, user: AdminUser, link_id: str, patch_in: LinkPatch
) -> dict[str, Any]:
    link = link_service.get(session=session, account_id=ctx.account_id, link_id=link_id)
    was = link.state
    link_service.patch(session=session, identity=ctx.identity, link=link, patch_in=patch_in)
    if was != "active" and link.state == "active":
        delegation_service.roll_up_link(session=session, identity=ctx.identity, link=link)
    commit(session, ctx)
    return link_service.to_public(link)
