"""The TMF621 facade's operations on the node's tickets and hubs. Callers own the transaction.

Everything goes through the ticket and delegation services the Tix API uses, so the same role
and scope rules hold (a ``contact`` sees only their organisation's tickets and public notes,
cannot edit fields or change status) and changes travel the chain the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

from pydantic import ValidationError
from sqlmodel import Session, col, select

from account.context import Identity
from account.delegations import service as delegation_service
from account.errors import Conflict, Forbidden, Invalid, NotFound
from account.tickets import service as ticket_service
from account.tickets.models import (
    CommentCreate,
    ContactIn,
    Ticket,
    TicketCreate,
    TicketEvent,
    TicketUpdate,
)
from account.tmf import mapping
from account.tmf.models import TmfHub, TmfNotification, TmfTicketInfo
from account.tmf.schemas import (
    NOT_NULLABLE,
    ExternalIdentifierIn,
    TroubleTicketCreate,
    TroubleTicketPatch,
)
from account.users.models import User
from exchange.clock import aware

MAX_HUBS_PER_USER: Final = 20
# A status filter is applied after the chain decides the status, over at most this many tickets.
MAX_STATUS_SCAN: Final = 2000

_STATUS_KINDS: Final = ("status", "partner_status", "created", "offered")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid"))


# -- reading ---------------------------------------------------------------------------------------


def facts(
    *, session: Session, identity: Identity, ticket: Ticket, user: User
) -> mapping.TicketFacts:
    """What ``user`` may see of ``ticket``, as the mapping renders it."""
    outgoing = delegation_service.outgoing(session=session, ticket=ticket)
    status = mapping.tmf_status(ticket.status, [d.state for d in outgoing])
    staff = user.role != "contact"
    info = session.get(TmfTicketInfo, ticket.id)
    nodes = delegation_service.subtree_for(session=session, ticket=ticket) if staff else []
    refs = {d.delegation_id: d.remote_ref for d in outgoing if d.remote_ref}
    upstream = None
    if staff and ticket.upstream_account and ticket.upstream_ref:
        upstream = (ticket.upstream_account, ticket.upstream_ref)
    requester = (ticket.requester or {}).get("name")
    last = session.exec(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, col(TicketEvent.kind).in_(_STATUS_KINDS))
        .order_by(col(TicketEvent.id).desc())
    ).first()
    reason = None
    if last is not None and last.kind == "status" and last.detail:
        reason = str(last.detail.get("note") or "") or None
    notes = [
        mapping.NoteFacts(id=c.comment_id, author=c.author, date=c.created_at, text=c.body)
        for c in ticket_service.list_comments(session=session, ticket=ticket, user=user)
        if c.visibility != "internal"
    ]
    incoming = delegation_service.incoming(session=session, ticket=ticket)
    expected = mapping.expected_resolution(
        aware(incoming.resolve_due_at) if incoming and incoming.resolve_due_at else None,
        [(d.state, aware(d.resolve_due_at) if d.resolve_due_at else None) for d in outgoing],
    )
    return mapping.TicketFacts(
        number=ticket.number,
        title=ticket.title,
        description=ticket.description,
        priority=ticket.priority,
        category=ticket.category,
        status=status,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        resolved_at=ticket.resolved_at,
        status_changed_at=last.at if last is not None else ticket.updated_at,
        status_reason=reason,
        requested_resolution_at=info.requested_resolution_at if info else None,
        external_ids=mapping.chain_identifiers(
            nodes=nodes,
            refs=refs,
            upstream=upstream,
            client_ids=info.external_ids if info else [],
            chain_id=ticket.chain_id,
        ),
        parties=mapping.chain_parties(
            provider=(identity.account_id, identity.label),
            nodes=nodes,
            upstream_account=ticket.upstream_account if staff else None,
            organisation=ticket.organisation,
            requester=str(requester) if requester else None,
        ),
        notes=notes,
        expected_resolution_at=expected,
        sla_state=ticket.sla_state,
    )


def render(
    *, session: Session, identity: Identity, ticket: Ticket, user: User, base_url: str
) -> dict[str, Any]:
    return mapping.render(
        facts(session=session, identity=identity, ticket=ticket, user=user), base_url=base_url
    )


def get(*, session: Session, identity: Identity, user: User, number: str) -> Ticket:
    return ticket_service.get_visible(
        session=session, account_id=identity.account_id, user=user, number=number
    )


def list_tickets(
    *,
    session: Session,
    identity: Identity,
    user: User,
    offset: int,
    limit: int,
    statuses: frozenset[str] | None = None,
    priorities: frozenset[str] | None = None,
    ticket_type: str | None = None,
    number: str | None = None,
) -> tuple[list[Ticket], int]:
    """A page of visible tickets, newest first, filtered on TMF attributes; and the total."""
    ticket_ids: list[int] | None = None
    if priorities is not None or ticket_type is not None or number is not None:
        statement = select(Ticket.id).where(Ticket.account_id == identity.account_id)
        if priorities is not None:
            statement = statement.where(col(Ticket.priority).in_(sorted(priorities)))
        if ticket_type is not None:
            statement = statement.where(Ticket.category == ticket_type)
        if number is not None:
            statement = statement.where(Ticket.number == number)
        ticket_ids = [int(i) for i in session.exec(statement).all() if i is not None]
    if statuses is None:
        return ticket_service.list_visible(
            session=session,
            account_id=identity.account_id,
            user=user,
            ticket_ids=ticket_ids,
            limit=limit,
            offset=offset,
        )
    candidates: set[str] = set()
    for status in statuses:
        candidates |= mapping.local_statuses_for(status)
    rows, _ = ticket_service.list_visible(
        session=session,
        account_id=identity.account_id,
        user=user,
        status=sorted(candidates),
        ticket_ids=ticket_ids,
        limit=MAX_STATUS_SCAN,
        offset=0,
    )
    matching = [
        t
        for t in rows
        if mapping.tmf_status(
            t.status, [d.state for d in delegation_service.outgoing(session=session, ticket=t)]
        )
        in statuses
    ]
    return matching[offset : offset + limit], len(matching)


# -- writing ---------------------------------------------------------------------------------------


def _priority(priority: str | None, severity: str | None) -> str | None:
    try:
        return mapping.priority_in(priority, severity)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def _client_ids(items: Sequence[ExternalIdentifierIn]) -> list[dict[str, Any]]:
    """The client's own identifiers; the chain's (``Tix…`` types) are derived, not stored, so
    a client that sends back what it read does not duplicate them."""
    return [
        e.model_dump(exclude_none=True, by_alias=True)
        for e in items
        if not (e.externalIdentifierType or "").startswith("Tix")
    ]


def _actor(user: User) -> str:
    return user.full_name or user.username


def _add_notes(
    session: Session, identity: Identity, ticket: Ticket, user: User, texts: Sequence[str]
) -> None:
    visibility = "public" if user.role == "contact" else "partner"
    for text in texts:
        delegation_service.comment(
            session=session,
            identity=identity,
            ticket=ticket,
            comment_in=CommentCreate(body=text, visibility=visibility),
            actor=_actor(user),
        )


def create(
    *, session: Session, identity: Identity, user: User, body: TroubleTicketCreate
) -> Ticket:
    """Open a ticket from a ``TroubleTicket_FVO``; notes become comments (by the caller)."""
    priority = _priority(body.priority, body.severity) or "normal"
    organisation = requester = None
    for party in body.relatedParty:
        name = party.partyOrPartyRole.name or party.partyOrPartyRole.partyName
        if not name:
            raise Invalid(f"relatedParty with role {party.role} needs partyOrPartyRole.name")
        if party.role == "customer":
            organisation = name[:200]
        else:
            requester = name
    title = body.name or (body.description.strip().splitlines() or [""])[0][:120]
    try:
        ticket_in = TicketCreate(
            title=title or body.ticketType,
            description=body.description,
            priority=priority,
            category=body.ticketType,
            requester=ContactIn(name=requester) if requester else None,
            organisation=organisation,
        )
    except ValidationError as exc:
        raise Invalid(_first_error(exc)) from exc
    ticket = ticket_service.create(
        session=session, account_id=identity.account_id, ticket_in=ticket_in, actor=user
    )
    assert ticket.id is not None
    session.add(
        TmfTicketInfo(
            ticket_id=ticket.id,
            external_ids=_client_ids(body.externalIdentifier),
            requested_resolution_at=body.requestedResolutionDate,
        )
    )
    _add_notes(session, identity, ticket, user, [n.text for n in body.note])
    session.flush()
    return ticket


def patch(
    *,
    session: Session,
    identity: Identity,
    user: User,
    ticket: Ticket,
    body: TroubleTicketPatch,
) -> None:
    """Apply a merge patch: fields, appended notes, then the status (all or nothing)."""
    given = body.model_fields_set
    for name in given & NOT_NULLABLE:
        if getattr(body, name) is None:
            raise Invalid(f"{name} cannot be removed")
    field_names = given - {"status", "statusChangeReason", "note", "type_", "base_type"}
    field_names -= {"schema_location"}
    if field_names and user.role == "contact":
        raise Forbidden("contacts cannot edit tickets")
    if "statusChangeReason" in given and "status" not in given:
        raise Invalid("statusChangeReason goes with a status")
    target = None
    if body.status is not None:
        if user.role == "contact":
            raise Forbidden("contacts cannot change the status")
        target = mapping.local_target(body.status, ticket.status)
        if target is None:
            raise Invalid(f"the status cannot be set to {body.status}")
    priority = _priority(body.priority, body.severity)
    updates: dict[str, Any] = {}
    if body.name is not None:
        updates["title"] = body.name
    if body.description is not None:
        updates["description"] = body.description
    if priority is not None:
        updates["priority"] = priority
    if body.ticketType is not None:
        updates["category"] = body.ticketType
    if updates:
        try:
            update_in = TicketUpdate.model_validate(updates)
        except ValidationError as exc:
            raise Invalid(_first_error(exc)) from exc
        changes = ticket_service.update(
            session=session, ticket=ticket, update_in=update_in, actor=user
        )
        delegation_service.send_update(
            session=session, identity=identity, ticket=ticket, changes=changes
        )
    if {"externalIdentifier", "requestedResolutionDate"} & given:
        if ticket.status in ("closed", "declined", "cancelled"):
            raise Conflict(f"a {ticket.status} ticket cannot be edited")
        assert ticket.id is not None
        info = session.get(TmfTicketInfo, ticket.id) or TmfTicketInfo(ticket_id=ticket.id)
        if "externalIdentifier" in given:
            info.external_ids = _client_ids(body.externalIdentifier or [])
        if "requestedResolutionDate" in given:
            info.requested_resolution_at = body.requestedResolutionDate
        session.add(info)
    if body.note:
        known = {
            c.comment_id
            for c in ticket_service.list_comments(session=session, ticket=ticket, user=user)
        }
        _add_notes(
            session, identity, ticket, user, [n.text for n in body.note if n.id not in known]
        )
    if target is not None and target != ticket.status:
        delegation_service.change_status(
            session=session,
            identity=identity,
            ticket=ticket,
            target=target,
            note=body.statusChangeReason or "",
            actor=user.username,
        )
    session.flush()


# -- hubs ------------------------------------------------------------------------------------------


def create_hub(
    *,
    session: Session,
    account_id: str,
    user: User,
    callback: str,
    query: str | None,
    allowed_hosts: Sequence[str] = (),
) -> TmfHub:
    try:
        mapping.check_callback(callback, allowed_hosts)
        mapping.parse_query(query)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    owned = session.exec(
        select(TmfHub.id).where(TmfHub.account_id == account_id, TmfHub.owner_id == user.id)
    ).all()
    if len(owned) >= MAX_HUBS_PER_USER:
        raise Conflict(f"at most {MAX_HUBS_PER_USER} subscriptions per user")
    assert user.id is not None
    hub = TmfHub(
        id=str(uuid.uuid4()),
        account_id=account_id,
        owner_id=user.id,
        callback=callback,
        query=query or None,
    )
    session.add(hub)
    session.flush()
    return hub


def get_hub(*, session: Session, account_id: str, user: User, hub_id: str) -> TmfHub:
    """The hub if ``user`` owns it (admins see every hub of the account), else ``NotFound``."""
    hub = session.get(TmfHub, hub_id[:36])
    if hub is None or hub.account_id != account_id:
        raise NotFound("hub not found")
    if hub.owner_id != user.id and user.role != "admin":
        raise NotFound("hub not found")
    return hub


def delete_hub(*, session: Session, account_id: str, user: User, hub_id: str) -> None:
    """Unsubscribe: the hub and the events still waiting for it go."""
    hub = get_hub(session=session, account_id=account_id, user=user, hub_id=hub_id)
    for row in session.exec(select(TmfNotification).where(TmfNotification.hub_id == hub.id)):
        session.delete(row)
    session.delete(hub)
    session.flush()


def hub_public(hub: TmfHub, *, base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@type": "Hub",
        "id": hub.id,
        "href": f"{base_url}{mapping.API_BASE}/hub/{hub.id}",
        "callback": hub.callback,
    }
    if hub.query:
        out["query"] = hub.query
    return out
