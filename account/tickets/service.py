"""Operations on tickets, comments and the timeline. Callers own the transaction.

Visibility is enforced here, in every query: a ``contact`` sees only the tickets of their own
organisation, and only ``public`` comments; nobody sees a ticket of another hosted account.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, false, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from account.delegations.models import Delegation
from account.errors import Conflict, Forbidden, Invalid, NotFound
from account.tickets import search, states
from account.tickets.models import (
    Comment,
    CommentCreate,
    Ticket,
    TicketCreate,
    TicketEvent,
    TicketUpdate,
)
from account.users.models import User
from exchange.clock import utcnow


def number_prefix(account_id: str) -> str:
    return account_id.upper()[:40].rstrip("-")


def _scoped(
    statement: SelectOfScalar[Ticket], *, account_id: str, user: User
) -> SelectOfScalar[Ticket]:
    statement = statement.where(Ticket.account_id == account_id)
    if user.role == "contact":
        # A contact without an organisation sees nothing. (A NUL sentinel here was a 500 on
        # PostgreSQL, which refuses NUL in text parameters; found by tests/hostile.)
        statement = statement.where(
            Ticket.organisation == user.organisation if user.organisation else false()
        )
    return statement


# Timeline lines are written with one Core ``INSERT`` each, at once, on the caller's
# connection and transaction: no ORM object and no unit of work for a row nothing reads back
# in the writing transaction (a query that does, like the timeline's, sees it).
_EVENTS = cast(Table, TicketEvent.__table__)  # type: ignore[attr-defined]
_INSERT_EVENT = _EVENTS.insert()


def record(
    *,
    session: Session,
    ticket: Ticket,
    kind: str,
    actor: str | None = None,
    detail: dict[str, Any] | None = None,
    source_account: str | None = None,
    level: int | None = None,
    at: datetime | None = None,
) -> None:
    """Append one event to the ticket's timeline (at the ticket's own level unless told)."""
    assert ticket.id is not None  # (set by the flush that wrote the ticket's row)
    session.connection().execute(
        _INSERT_EVENT,
        {
            "ticket_id": ticket.id,
            "kind": kind,
            # Partners' labels arrive as 500-character text; the column holds 200
            # (PostgreSQL refused the rest and the message was retried to the limit:
            # tests/hostile).
            "actor": actor[:_ACTOR_CHARS] if actor else actor,
            "detail": detail,
            "source_account": source_account,
            "level": ticket.depth if level is None else level,
            "at": at or utcnow(),
        },
    )


def create(
    *,
    session: Session,
    account_id: str,
    ticket_in: TicketCreate,
    actor: User | None = None,
    status: str = "new",
    chain_id: str | None = None,
    depth: int = 0,
    upstream: tuple[str, str, str] | None = None,
) -> Ticket:
    """Create a ticket; ``upstream`` is ``(account, delegation_id, ref)`` for offered ones."""
    organisation = ticket_in.organisation
    if actor is not None and actor.role == "contact":
        if not actor.organisation:
            raise Forbidden("your account has no organisation; ask an admin to set one")
        organisation = actor.organisation
    ticket = Ticket(
        number=f"tmp-{uuid.uuid4()}",
        account_id=account_id,
        title=ticket_in.title,
        description=ticket_in.description,
        priority=ticket_in.priority,
        category=ticket_in.category,
        status=status,
        service_object=ticket_in.service_object.model_dump() if ticket_in.service_object else None,
        requester=ticket_in.requester.model_dump() if ticket_in.requester else None,
        assignee=ticket_in.assignee,
        organisation=organisation,
        chain_id=chain_id or str(uuid.uuid4()),
        depth=depth,
    )
    if upstream is not None:
        ticket.upstream_account, ticket.upstream_delegation_id, ticket.upstream_ref = upstream
    session.add(ticket)
    session.flush()
    ticket.number = f"{number_prefix(account_id)}-{ticket.id}"
    record(
        session=session,
        ticket=ticket,
        kind="created" if upstream is None else "offered",
        actor=actor.username if actor else None,
        source_account=upstream[0] if upstream else None,
        detail={"status": status},
    )
    session.flush()
    return ticket


def list_visible(
    *,
    session: Session,
    account_id: str,
    user: User,
    status: Sequence[str] = (),
    q: str | None = None,
    ticket_ids: Sequence[int] | None = None,
    partner: str | None = None,
    sla: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Ticket], int]:
    """A page of the tickets this user may see, newest first, and how many there are in all."""
    statement = _scoped(select(Ticket), account_id=account_id, user=user)
    if status:
        statement = statement.where(col(Ticket.status).in_(list(status)))
    if ticket_ids is not None:
        statement = statement.where(col(Ticket.id).in_(list(ticket_ids)))
    if partner is not None:
        # Answered from the index on (account_id, peer_account, ticket_id) of the delegations.
        delegated = select(Delegation.ticket_id).where(
            Delegation.account_id == account_id, Delegation.peer_account == partner
        )
        statement = statement.where(col(Ticket.id).in_(delegated))
    if sla is not None:
        statement = statement.where(Ticket.sla_state == sla)
    if q:
        # An index on both databases; the semantics are in account/tickets/search.py.
        statement = statement.where(search.condition(session.get_bind().dialect.name, q))
    # Counted from the filters' index (no subquery of whole rows); see docs/performance.md.
    counting = statement.with_only_columns(func.count(), maintain_column_froms=True)
    total = session.scalar(counting) or 0
    rows = session.exec(statement.order_by(col(Ticket.id).desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total)


def get_visible(*, session: Session, account_id: str, user: User, number: str) -> Ticket:
    """The ticket with this number if the user may see it, else ``NotFound``."""
    statement = _scoped(select(Ticket), account_id=account_id, user=user)
    ticket = session.exec(statement.where(Ticket.number == number)).first()
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


def get_by_id(*, session: Session, ticket_id: int, lock: bool = False) -> Ticket:
    statement = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        statement = statement.with_for_update()
    ticket = session.exec(statement).first()
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


_REQUIRED_FIELDS = ("title", "description", "priority")
_ACTOR_CHARS = 200  # TicketEvent.actor


def update(
    *, session: Session, ticket: Ticket, update_in: TicketUpdate, actor: User
) -> dict[str, Any]:
    """Apply a partial update; return the fields that changed."""
    if actor.role == "contact":
        raise Forbidden("contacts cannot edit tickets")
    if ticket.status in states.TERMINAL_TICKET:
        raise Conflict(f"a {ticket.status} ticket cannot be edited")
    changes: dict[str, Any] = {}
    fields = update_in.model_dump(exclude_unset=True)
    nulled = sorted(name for name in _REQUIRED_FIELDS if name in fields and fields[name] is None)
    if nulled:  # an explicit null for a required column was a 500 (tests/hostile)
        raise Invalid(f"{', '.join(nulled)} cannot be null")
    addendum = fields.pop("addendum", None)
    if addendum:
        ticket.description = (ticket.description + "\n\n" + addendum).strip()[:20_000]
        changes["addendum"] = addendum
    for name, value in fields.items():
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            changes[name] = value
    if changes:
        ticket.updated_at = utcnow()
        record(
            session=session,
            ticket=ticket,
            kind="updated",
            actor=actor.username,
            detail={"fields": sorted(changes)},
        )
        session.add(ticket)
        session.flush()
    return changes


def set_status(
    *,
    session: Session,
    ticket: Ticket,
    target: str,
    note: str = "",
    actor: str | None = None,
    source_account: str | None = None,
    level: int | None = None,
    check: bool = True,
) -> bool:
    """Move the ticket to ``target``; ``Conflict`` if the state machine forbids it.

    Returns whether anything changed. ``check=False`` is for moves a partner's message makes.
    """
    if ticket.status == target:
        return False
    if check and not states.can_move(ticket.status, target):
        raise Conflict(f"cannot move a ticket from {ticket.status} to {target}")
    previous = ticket.status
    ticket.status = target
    ticket.updated_at = utcnow()
    if target == "resolved":
        ticket.resolved_at = ticket.updated_at
        if note:
            ticket.resolution = note
    elif target in ("reopened", "in_progress") and previous == "resolved":
        ticket.resolved_at = None
    record(
        session=session,
        ticket=ticket,
        kind="status",
        actor=actor,
        source_account=source_account,
        level=level,
        detail={"from": previous, "to": target} | ({"note": note} if note else {}),
    )
    session.add(ticket)
    session.flush()
    return True


def add_comment(
    *,
    session: Session,
    ticket: Ticket,
    comment_in: CommentCreate,
    author: str,
    source_account: str | None = None,
    comment_id: str | None = None,
    created_at: datetime | None = None,
    level: int | None = None,
) -> Comment | None:
    """Add a comment; idempotent by ``comment_id`` (returns None when it is already there)."""
    assert ticket.id is not None
    cid = comment_id or str(uuid.uuid4())
    exists = session.exec(
        select(Comment).where(Comment.ticket_id == ticket.id, Comment.comment_id == cid)
    ).first()
    if exists is not None:
        return None
    comment = Comment(
        comment_id=cid,
        ticket_id=ticket.id,
        author=author,
        body=comment_in.body,
        visibility=comment_in.visibility,
        source_account=source_account,
        created_at=created_at or utcnow(),
    )
    session.add(comment)
    record(
        session=session,
        ticket=ticket,
        kind="comment",
        actor=author,
        source_account=source_account,
        level=level,
        detail={"comment_id": cid, "visibility": comment_in.visibility},
    )
    session.flush()
    return comment


def list_comments(*, session: Session, ticket: Ticket, user: User) -> list[Comment]:
    statement = select(Comment).where(Comment.ticket_id == ticket.id)
    if user.role == "contact":
        statement = statement.where(Comment.visibility == "public")
    return list(session.exec(statement.order_by(col(Comment.created_at), col(Comment.id))).all())


def timeline(*, session: Session, ticket: Ticket) -> list[TicketEvent]:
    statement = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
    return list(session.exec(statement.order_by(col(TicketEvent.at), col(TicketEvent.id))).all())
