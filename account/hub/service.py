"""Node-side hub operations (docs/operator-guide.md, "Link partners through the hub").

Invitations travel by pull: the sender's node hands the ordinary invitation token to the hub
(``POST /hub/v1/invitations``); the recipient's node lists what waits for it when its admin
asks (``GET /api/v1/links/incoming`` → a signed ``GET /hub/v1/invitations/pending``, also what
the partners page shows), and accepting one runs the ordinary ``accept_invitation`` with that
token, then tells the hub to forget it; declining one only tells the hub to forget it. Nothing
is stored on the node until the admin accepts, so the node needs no table: the hub keeps the
token until then or until it expires. ``account.hub.poller`` asks every
``TIX_HUB_POLL_SECONDS`` and keeps only the count (``ctx.status``, in memory) for the web UI.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import HTTPException
from sqlmodel import Session

from account.context import NodeContext
from account.errors import Conflict, Invalid, NotFound
from account.links import service as link_service
from account.links.models import InvitationCreate, Link
from exchange.hub.client import HubClient, HubRefused, HubUnavailable

# ``ctx.status`` keys: whether the hub answered the last time, and how many invitations wait.
STATUS_HUB = "hub"
STATUS_PENDING = "hub_invitations"


def client(
    ctx: NodeContext, *, key: Ed25519PrivateKey | None = None, timeout: float | None = None
) -> HubClient:
    url = ctx.settings.hub_url
    if not url:
        raise Conflict("this node has no hub configured (TIX_HUB_URL)")
    if timeout is None:
        return HubClient(url, account=ctx.account_id, key=key or ctx.identity.key)
    return HubClient(url, account=ctx.account_id, key=key or ctx.identity.key, timeout=timeout)


def note_pending(ctx: NodeContext, count: int | None) -> None:
    """Remember how many invitations wait at the hub (``None``: the hub did not answer)."""
    if count is None:
        ctx.status[STATUS_HUB] = "down"
        return
    ctx.status[STATUS_HUB] = "up"
    ctx.status[STATUS_PENDING] = str(count)


def pending_count(ctx: NodeContext) -> int:
    """The last known number of invitations waiting at the hub (0 when unknown)."""
    value = ctx.status.get(STATUS_PENDING, "0")
    return int(value) if value.isdigit() else 0


def _map(exc: HubRefused | HubUnavailable) -> Exception:
    if isinstance(exc, HubUnavailable):
        return HTTPException(status_code=503, detail=f"hub unavailable: {exc}")
    if exc.status == 404:
        return NotFound(f"hub: {exc.detail}")
    if exc.status == 409:
        return Conflict(f"hub: {exc.detail}")
    return Invalid(f"hub refused ({exc.status}): {exc.detail}")


async def register(
    ctx: NodeContext, *, transport: str = "amqp", signed_with: Ed25519PrivateKey | None = None
) -> dict[str, Any]:
    """Register (or update) this account in the hub's directory.

    After ``tix keys rotate`` the hub still has the old key pinned: sign with the retired key
    (``signed_with``) to move the entry to the current one.
    """
    try:
        return await client(ctx, key=signed_with).register(
            display_name=ctx.identity.label,
            public_key=ctx.identity.public_key,
            transport=transport,
            api_url=ctx.settings.public_url or None,
        )
    except (HubRefused, HubUnavailable) as exc:
        raise _map(exc) from exc


async def search(ctx: NodeContext, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    try:
        return await client(ctx).search(query, limit=limit)
    except (HubRefused, HubUnavailable) as exc:
        raise _map(exc) from exc


async def invite(
    ctx: NodeContext, session: Session, *, to: str, invitation_in: InvitationCreate, note: str
) -> dict[str, Any]:
    """Create an invitation and send its token to ``to`` through the hub (all or nothing)."""
    hub = client(ctx)
    invitation, token = link_service.create_invitation(
        session=session,
        identity=ctx.identity,
        invitation_in=invitation_in,
        api_url=ctx.settings.public_url or None,
    )
    try:
        sent = await hub.send_invitation(to=to, token=token, note=note)
    except (HubRefused, HubUnavailable) as exc:
        session.rollback()
        raise _map(exc) from exc
    session.commit()
    return {
        "invitation_id": invitation.id,
        "link_id": invitation.link_id,
        "to": to,
        "hub_id": sent["id"],
    }


def _describe(item: dict[str, Any]) -> dict[str, Any]:
    """An incoming invitation as the admin sees it: who, which contract, until when."""
    public: dict[str, Any] = {
        "id": item["id"],
        "from": item["from"],
        "from_label": item["from_label"],
        "note": item["note"],
        "received_at": item["created_at"],
        "expires_at": item["expires_at"],
    }
    try:
        claims = link_service.read_invitation(str(item["token"]))
    except Invalid as exc:
        return public | {"valid": False, "problem": exc.detail}
    if claims.upstream != item["from"]:
        return public | {"valid": False, "problem": "token issued by another account"}
    return public | {
        "valid": True,
        "link_id": claims.link_id,
        "partner_kid": claims.kid,
        "contract": claims.contract.model_dump(),
    }


async def incoming(ctx: NodeContext, *, hub_timeout: float | None = None) -> list[dict[str, Any]]:
    try:
        items = await client(ctx, timeout=hub_timeout).pending()
    except HubUnavailable as exc:
        note_pending(ctx, None)
        raise _map(exc) from exc
    except HubRefused as exc:
        raise _map(exc) from exc
    note_pending(ctx, len(items))
    return [_describe(item) for item in items]


async def accept_incoming(ctx: NodeContext, session: Session, invitation_id: str) -> Link:
    """Accept the hub-delivered invitation ``invitation_id`` and let the hub forget it."""
    hub = client(ctx)
    try:
        items = await hub.pending()
    except (HubRefused, HubUnavailable) as exc:
        raise _map(exc) from exc
    item = next((i for i in items if i["id"] == invitation_id), None)
    if item is None:
        raise NotFound("no such incoming invitation")
    claims = link_service.read_invitation(str(item["token"]))
    if claims.upstream != item["from"]:
        raise Invalid("invitation token issued by another account than its sender")
    existing = session.get(Link, claims.link_id)
    if existing is not None and existing.account_id == ctx.account_id:
        link = existing  # accepted before; the hub's acknowledgement was lost
    else:
        link = link_service.accept_invitation(
            session=session,
            identity=ctx.identity,
            token=str(item["token"]),
            api_url=ctx.settings.public_url or None,
        )
        session.commit()
        ctx.wake_relay()
    try:
        await hub.acknowledge(invitation_id)
    except (HubRefused, HubUnavailable):
        pass  # the link stands; the next accept of this id only acknowledges it
    else:
        note_pending(ctx, max(0, len(items) - 1))
    return link


async def decline_incoming(ctx: NodeContext, invitation_id: str) -> dict[str, Any]:
    """Decline the hub-delivered invitation ``invitation_id``: the hub drops its token.

    Nothing changes on this node; the sender's invitation stays open on its node until it
    expires (it is single use, and nobody else can fetch it from the hub).
    """
    hub = client(ctx)
    try:
        items = await hub.pending()
        item = next((i for i in items if i["id"] == invitation_id), None)
        if item is None:
            raise NotFound("no such incoming invitation")
        await hub.acknowledge(invitation_id)
    except (HubRefused, HubUnavailable) as exc:
        raise _map(exc) from exc
    note_pending(ctx, max(0, len(items) - 1))
    return {"id": invitation_id, "from": item["from"], "from_label": item["from_label"]}
