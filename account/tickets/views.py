"""Ticket endpoints: list, create, get, patch, status, comments, timeline, chain, accept/decline."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from account.context import NodeContext
from account.delegations import chain
from account.delegations import service as delegation_service
from account.deps import ContextDep, CurrentUser, DispatcherUser, SessionDep, StaffUser, commit
from account.errors import Forbidden
from account.sla import flows as sla_flows
from account.sla import service as sla_service
from account.tickets import page, states
from account.tickets import service as ticket_service
from account.tickets.models import (
    CommentCreate,
    RatingIn,
    Reason,
    StatusChange,
    Ticket,
    TicketCreate,
    TicketUpdate,
)
from account.users.models import User
from exchange.clock import instant

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])


def ticket_public(
    session: Session, ticket: Ticket, user: User, facts: page.PageFacts | None = None
) -> dict[str, Any]:
    """A ticket in the API's shape; contacts get no partner details.

    ``facts``: the page's delegations and unsent messages, loaded once for a list (else each
    ticket queries its own)."""
    rows = facts.of(ticket) if facts is not None else None
    upstream = None
    if ticket.upstream_account and user.role != "contact":
        upstream = {
            "account": ticket.upstream_account,
            "delegation_id": ticket.upstream_delegation_id,
            "ref": ticket.upstream_ref,
        }
    out: dict[str, Any] = {
        "number": ticket.number,
        "title": ticket.title,
        "description": ticket.description,
        "priority": ticket.priority,
        "category": ticket.category,
        "status": ticket.status,
        "service_object": ticket.service_object,
        "requester": ticket.requester,
        "assignee": ticket.assignee,
        "organisation": ticket.organisation,
        "created_at": instant(ticket.created_at),
        "updated_at": instant(ticket.updated_at),
        "resolved_at": instant(ticket.resolved_at) if ticket.resolved_at else None,
        "resolution": ticket.resolution,
        "rating": {"score": ticket.rating, "comment": ticket.rating_comment}
        if ticket.rating
        else None,
        "chain_id": ticket.chain_id,
        "depth": ticket.depth,
        "upstream": upstream,
        "sla": sla_service.ticket_sla(session=session, ticket=ticket, rows=rows)
        if user.role != "contact"
        else {},
        "actions": _actions(ticket),
    }
    if user.role != "contact":
        if facts is not None and rows is not None:
            out["delegations"] = [
                delegation_service.to_public(
                    session=session, delegation=d, unsent=facts.unsent_of(d), siblings=rows
                )
                for d in rows
                if d.role == "out"
            ]
        else:
            out["delegations"] = [
                delegation_service.to_public(session=session, delegation=d)
                for d in delegation_service.outgoing(session=session, ticket=ticket)
            ]
    return out


def _actions(ticket: Ticket) -> list[str]:
    """The status moves and offer answers the server will accept for this ticket now."""
    if ticket.status == "offered":
        return ["accept", "decline"]
    moves = set(states.allowed_moves(ticket.status))
    if ticket.upstream_account:
        moves -= states.UPSTREAM_OWNED
    return sorted(moves)


def _get(session: Session, ctx: NodeContext, user: User, number: str) -> Ticket:
    return ticket_service.get_visible(
        session=session, account_id=ctx.account_id, user=user, number=number
    )


@router.get("")
def list_tickets(
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[list[str] | None, Query(alias="status", max_length=20)] = None,
    partner: Annotated[str | None, Query(max_length=63)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    sla: Annotated[
        Literal["at_risk", "breached"] | None,
        Query(description="tickets whose chain has an SLA clock at risk / breached"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,  # fits the database's integer
) -> dict[str, Any]:
    items, total = ticket_service.list_visible(
        session=session,
        account_id=ctx.account_id,
        user=user,
        status=status_ or (),
        q=q,
        partner=partner or None,
        sla=sla,
        limit=limit,
        offset=offset,
    )
    facts = page.load(session, ctx.account_id, items) if user.role != "contact" else None
    return {"items": [ticket_public(session, t, user, facts) for t in items], "total": total}


@router.post("", status_code=status.HTTP_201_CREATED)
def create_ticket(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, ticket_in: TicketCreate
) -> dict[str, Any]:
    ticket = ticket_service.create(
        session=session, account_id=ctx.account_id, ticket_in=ticket_in, actor=user
    )
    commit(session, ctx)
    return ticket_public(session, ticket, user)


@router.get("/{number}")
def get_ticket(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, number: str
) -> dict[str, Any]:
    return ticket_public(session, _get(session, ctx, user, number), user)


@router.patch("/{number}")
def patch_ticket(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, number: str, update_in: TicketUpdate
) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    changes = ticket_service.update(session=session, ticket=ticket, update_in=update_in, actor=user)
    delegation_service.send_update(
        session=session, identity=ctx.identity, ticket=ticket, changes=changes
    )
    commit(session, ctx)
    return ticket_public(session, ticket, user)


@router.post("/{number}/status")
def change_status(
    ctx: ContextDep, session: SessionDep, user: StaffUser, number: str, change: StatusChange
) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    delegation_service.change_status(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        target=change.status,
        note=change.note,
        actor=user.username,
    )
    commit(session, ctx)
    return ticket_public(session, ticket, user)


@router.get("/{number}/comments")
def list_comments(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, number: str
) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    items = [
        {
            "id": c.comment_id,
            "author": c.author,
            "body": c.body,
            "visibility": c.visibility,
            "source_account": c.source_account,
            "created_at": instant(c.created_at),
        }
        for c in ticket_service.list_comments(session=session, ticket=ticket, user=user)
    ]
    return {"items": items, "total": len(items)}


@router.post("/{number}/comments", status_code=status.HTTP_201_CREATED)
def add_comment(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, number: str, comment_in: CommentCreate
) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    if user.role == "contact" and comment_in.visibility != "public":
        raise Forbidden("contacts write public comments only")
    delegation_service.comment(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        comment_in=comment_in,
        actor=user.full_name or user.username,
    )
    commit(session, ctx)
    return {"ok": True}


@router.get("/{number}/timeline")
def timeline(ctx: ContextDep, session: SessionDep, user: StaffUser, number: str) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    items = [
        {
            "at": instant(e.at),
            "kind": e.kind,
            "actor": e.actor,
            "source_account": e.source_account,
            "level": e.level,
            "detail": e.detail,
        }
        for e in ticket_service.timeline(session=session, ticket=ticket)
    ]
    return {"items": items, "total": len(items)}


@router.get("/{number}/chain")
def get_chain(ctx: ContextDep, session: SessionDep, user: StaffUser, number: str) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    nodes = [
        chain.api_node(node)
        for node in delegation_service.subtree_for(session=session, ticket=ticket)
    ]
    events = sla_flows.chain_events(session=session, account_id=ctx.account_id, ticket=ticket)
    sla_flows.annotate_chain(nodes, events)
    sla = sla_service.ticket_sla(session=session, ticket=ticket)
    return {
        "ticket": {
            "number": ticket.number,
            "status": ticket.status,
            "account": ctx.account_id,
            "level": ticket.depth,
            "sla": {
                "state": sla["state"],
                "response": sla["response"],
                "resolution": sla["resolution"],
                "squeeze": sla["squeeze"],
            },
        },
        "delegations": nodes,
    }


@router.post("/{number}/accept")
def accept_offer(
    ctx: ContextDep, session: SessionDep, user: DispatcherUser, number: str
) -> dict[str, Any]:
    ticket = _get(session, ctx, user, number)
    delegation_service.accept(
        session=session, identity=ctx.identity, ticket=ticket, actor=user.username
    )
    commit(session, ctx)
    return ticket_public(session, ticket, user)


@router.post("/{number}/decline")
def decline_offer(
    ctx: ContextDep,
    session: SessionDep,
    user: DispatcherUser,
    number: str,
    reason: Reason | None = None,
) -> dict[str, Any]:
    reason = reason or Reason()
    ticket = _get(session, ctx, user, number)
    delegation_service.decline(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        reason=reason.reason,
        actor=user.username,
    )
    commit(session, ctx)
    return ticket_public(session, ticket, user)


@router.post("/{number}/rating")
def rate(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, number: str, rating_in: RatingIn
) -> dict[str, Any]:
    """Rate a resolved ticket (its requester's contact or a dispatcher); it travels downstream."""
    if user.role == "engineer":
        raise Forbidden("engineers cannot rate tickets")
    ticket = _get(session, ctx, user, number)
    delegation_service.rate(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        score=rating_in.score,
        comment=rating_in.comment,
        actor=user.username,
    )
    commit(session, ctx)
    return ticket_public(session, ticket, user)
