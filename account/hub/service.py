"""Node-side hub operations (docs/operator-guide.md, "Link partners through the hub").

Invitations travel by pull: the sender's node hands the ordinary invitation token to the hub
(``POST /hub/v1/invitations``); the recipient's node lists what waits for it when its admin
asks (``GET /api/v1/links/incoming`` → a signed ``GET /hub/v1/invitations/pending``, also what
the partners page shows), and accepting one runs the ordinary ``accept_invitation`` with that
token, then tells the hub (``accepted``); declining one tells the hub ``declined`` with the
admin's optional reason. Either way the hub drops the token and keeps only the answer for the
sender. Nothing incoming is stored on the node until the admin accepts: the hub keeps the token
until then or until it expires.

The sender's node records each invitation it sent through the hub (``HubSentInvitation``) and
learns what became of it (``sync_sent``: accepted, declined with the reason, expired, taken);
then it lets the hub forget the answer. A declined invitation is revoked on the node, so its
token can no longer link. ``account.hub.poller`` does both every ``TIX_HUB_POLL_SECONDS`` and
keeps the incoming count (``ctx.status``, in memory) for the web UI.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import HTTPException
from sqlalchemy import func
from sqlmodel import Session, col, select

from account.context import NodeContext
from account.db import reader_for
from account.errors import Conflict, Invalid, NotFound
from account.hub.models import SENT_STATES, HubSentInvitation
from account.links import service as link_service
from account.links.models import Invitation, InvitationCreate, Link
from exchange.clock import aware, instant, parse_instant, utcnow
from exchange.hub.client import HubClient, HubRefused, HubUnavailable
from exchange.signing import public_key_b64

log = logging.getLogger("tix.hub")

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


async def _own_entry(hub: HubClient, account_id: str) -> dict[str, Any] | None:
    found = await hub.search(account_id, limit=200)
    return next((e for e in found if e["account_id"] == account_id), None)


async def move_key(
    hub_url: str,
    account_id: str,
    *,
    old_key: Ed25519PrivateKey,
    new_key: Ed25519PrivateKey,
    hub_timeout: float = 15.0,
) -> dict[str, Any] | None:
    """After a key rotation, move ``account_id``'s directory entry to ``new_key``.

    The hub pins the old key, so the change is a registration signed with it (as
    ``link.rekey`` is on the wire); the entry keeps its name, transport and URL. Returns the
    entry, or None when the account is not in the directory (nothing to move). An entry that
    already pins the new key (a second run) is returned as it is. ``HubRefused`` /
    ``HubUnavailable`` when the hub refuses (it pins yet another key) or does not answer.
    """
    new_public = public_key_b64(new_key)
    signed_old = HubClient(hub_url, account=account_id, key=old_key, timeout=hub_timeout)
    try:
        entry = await _own_entry(signed_old, account_id)
    except HubRefused as exc:
        if exc.status != 401:
            raise
        # The old key is not (or no longer) the pinned one: ask with the new key.
        signed_new = HubClient(hub_url, account=account_id, key=new_key, timeout=hub_timeout)
        try:
            entry = await _own_entry(signed_new, account_id)
        except HubRefused as again:
            if again.status == 401 and "not registered" in again.detail:
                return None
            raise exc from again
        if entry is not None and entry["public_key"] == new_public:
            return entry
        raise
    if entry is None:
        return None
    return await signed_old.register(
        display_name=str(entry["display_name"]),
        public_key=new_public,
        transport=str(entry["transport"]),
        api_url=entry.get("api_url"),
    )


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
    session.add(
        HubSentInvitation(
            id=str(sent["id"]),
            account_id=ctx.account_id,
            invitation_id=invitation.id,
            link_id=invitation.link_id,
            to_account=to,
            note=note,
            expires_at=invitation.expires_at,
        )
    )
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
        await hub.decide(invitation_id, decision="accepted")
    except (HubRefused, HubUnavailable):
        pass  # the link stands; the next accept of this id only tells the hub again
    else:
        note_pending(ctx, max(0, len(items) - 1))
    return link


async def decline_incoming(
    ctx: NodeContext, invitation_id: str, *, reason: str = ""
) -> dict[str, Any]:
    """Decline the hub-delivered invitation ``invitation_id``: the hub drops its token and
    keeps the answer (with ``reason``, at most 500 characters) for the sender's node, which
    revokes the invitation when it learns it. Nothing changes on this node."""
    reason = reason.strip()
    if len(reason) > 500:
        raise Invalid("reason: at most 500 characters")
    hub = client(ctx)
    try:
        items = await hub.pending()
        item = next((i for i in items if i["id"] == invitation_id), None)
        if item is None:
            raise NotFound("no such incoming invitation")
        await hub.decide(invitation_id, decision="declined", reason=reason)
    except (HubRefused, HubUnavailable) as exc:
        raise _map(exc) from exc
    note_pending(ctx, max(0, len(items) - 1))
    return {
        "id": invitation_id,
        "from": item["from"],
        "from_label": item["from_label"],
        "reason": reason,
    }


# -- invitations this node sent ---------------------------------------------------------------


def _open_sent(ctx: NodeContext) -> dict[str, tuple[str, str]]:
    """The sent invitations still ``pending`` here: hub id → (invitation id, state of the
    node's own invitation), read in a short session on a reader (never held across a hub
    call, and never the SQLite write connection: the poller asks every few seconds)."""
    with Session(reader_for(ctx.engine)) as session:
        rows = session.exec(
            select(HubSentInvitation, Invitation.state)
            .join(
                Invitation,
                col(Invitation.id) == col(HubSentInvitation.invitation_id),
                isouter=True,
            )
            .where(
                HubSentInvitation.account_id == ctx.account_id,
                HubSentInvitation.state == "pending",
            )
        ).all()
        return {row.id: (row.invitation_id, state or "") for row, state in rows}


def _outcome(item: dict[str, Any] | None, *, local_state: str) -> str:
    if local_state == "used":  # the partner's link.accept arrived: accepted, whatever the hub
        return "accepted"
    if item is None:
        return "pending"
    state = str(item.get("state", "pending"))
    return state if state in SENT_STATES else "pending"


async def sync_sent(ctx: NodeContext, *, hub_timeout: float | None = None) -> list[str]:
    """Learn what became of this node's pending sent invitations; the hub ids that changed.

    Answers are written here first, then the hub is told to forget them (best effort: an
    answer the hub keeps is read again, changing nothing). A declined invitation is revoked,
    so its token can no longer link. Raises ``HubUnavailable`` / ``HubRefused`` when the hub
    does not answer (the rows stay pending). Without pending rows the hub is not asked.
    """
    open_rows = await asyncio.to_thread(_open_sent, ctx)
    if not open_rows:
        return []
    hub = client(ctx, timeout=hub_timeout)
    items = {str(i["id"]): i for i in await hub.sent()}
    # In a thread: a wait for the node's (SQLite: one) write connection must not block the
    # event loop, where a request holding it may be awaiting the hub.
    changed = await asyncio.to_thread(_record, ctx, open_rows, items)
    for hub_id in changed:
        if hub_id in items:
            try:
                await hub.dismiss(hub_id)
            except (HubRefused, HubUnavailable):
                pass  # read again next time; the row here is no longer pending
    return changed


def _record(
    ctx: NodeContext, open_rows: dict[str, tuple[str, str]], items: dict[str, dict[str, Any]]
) -> list[str]:
    """Write what the hub said about ``open_rows``; the hub ids that changed."""
    now = utcnow()
    changed: list[str] = []
    with Session(ctx.engine) as session:
        for hub_id, (invitation_id, local_state) in open_rows.items():
            item = items.get(hub_id)
            state = _outcome(item, local_state=local_state)
            row = session.get(HubSentInvitation, hub_id)
            if row is None or row.state != "pending":
                continue
            if state == "pending" and aware(row.expires_at) <= now:
                state = "expired"  # the hub forgot it (say, the operator removed an entry)
            if state == "pending":
                continue
            row.state = state
            if item is not None and state != "accepted":
                row.reason = str(item.get("reason") or "")[:500]
            decided = item.get("decided_at") if item is not None else None
            row.decided_at = parse_instant(decided) if isinstance(decided, str) else now
            session.add(row)
            if state == "declined":
                invitation = session.get(Invitation, invitation_id)
                if invitation is not None and invitation.state == "open":
                    invitation.state = "revoked"
                    session.add(invitation)
                log.info(
                    "hub: %s declined the invitation %s%s",
                    row.to_account,
                    hub_id,
                    f": {row.reason}" if row.reason else "",
                )
            changed.append(hub_id)
        session.commit()
    return changed


def sent_to_public(row: HubSentInvitation) -> dict[str, Any]:
    return {
        "id": row.id,
        "invitation_id": row.invitation_id,
        "link_id": row.link_id,
        "to": row.to_account,
        "note": row.note,
        "state": row.state,
        "reason": row.reason,
        "sent_at": instant(aware(row.sent_at)),
        "expires_at": instant(aware(row.expires_at)),
        "decided_at": instant(aware(row.decided_at)) if row.decided_at is not None else None,
    }


async def sent(
    ctx: NodeContext, *, limit: int = 50, hub_timeout: float | None = None
) -> dict[str, Any]:
    """This node's invitations sent through the hub, newest first, after asking the hub for
    news (``synced`` false when it did not answer: the states are the last known)."""
    synced = False
    try:
        if ctx.settings.hub_url:
            await sync_sent(ctx, hub_timeout=hub_timeout)
            synced = True
    except (HubRefused, HubUnavailable) as exc:
        log.warning("hub: cannot learn what became of sent invitations: %s", exc)
        synced = False
    items, total = await asyncio.to_thread(_list_sent, ctx, limit)
    return {"items": items, "total": total, "synced": synced}


def _list_sent(ctx: NodeContext, limit: int) -> tuple[list[dict[str, Any]], int]:
    with Session(reader_for(ctx.engine)) as session:
        rows = session.exec(
            select(HubSentInvitation)
            .where(HubSentInvitation.account_id == ctx.account_id)
            .order_by(col(HubSentInvitation.sent_at).desc(), col(HubSentInvitation.id))
            .limit(limit)
        ).all()
        total = session.exec(
            select(func.count())
            .select_from(HubSentInvitation)
            .where(HubSentInvitation.account_id == ctx.account_id)
        ).one()
        return [sent_to_public(row) for row in rows], int(total)
