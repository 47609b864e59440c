"""Delegations on both ends of a link: offer, accept, decline, status roll-up, recall, rework.

Every operation changes local tables and writes the envelopes it causes into the outbox in the
caller's transaction. ``apply_*`` functions are the receiving half: they run inside the inbox's
transaction after every receiver check passed, and raise ``RejectedMessage`` for a message that
is well-formed and authentic but makes no sense here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from account.attachments import service as attachment_service
from account.config import Settings
from account.context import Identity
from account.delegations import chain
from account.delegations.models import Delegation, DelegationCreate
from account.errors import Conflict, Invalid, NotFound
from account.links import service as link_service
from account.links.models import Contract, Link
from account.messaging import outbox
from account.messaging.models import OutboxMessage
from account.sla import service as sla_service
from account.tickets import service as ticket_service
from account.tickets import states
from account.tickets.models import CommentCreate, ContactIn, ServiceObjectIn, Ticket, TicketCreate
from account.users import service as user_service
from exchange.clock import aware, instant, parse_instant, utcnow
from exchange.errors import RejectedMessage
from schemas import messages as m

# -- queries ------------------------------------------------------------------------------------


def outgoing(*, session: Session, ticket: Ticket) -> list[Delegation]:
    statement = select(Delegation).where(
        Delegation.ticket_id == ticket.id, Delegation.role == "out"
    )
    # id breaks ties: two offers in the same millisecond (the wire's precision) keep one order
    return list(
        session.exec(statement.order_by(col(Delegation.offered_at), col(Delegation.id))).all()
    )


def incoming(*, session: Session, ticket: Ticket) -> Delegation | None:
    statement = select(Delegation).where(Delegation.ticket_id == ticket.id, Delegation.role == "in")
    return session.exec(statement).first()


def get(*, session: Session, account_id: str, delegation_id: str) -> Delegation:
    row = session.exec(
        select(Delegation).where(
            Delegation.account_id == account_id, Delegation.delegation_id == delegation_id
        )
    ).first()
    if row is None:
        raise NotFound("delegation not found")
    return row


def _link(session: Session, delegation: Delegation) -> Link:
    """The delegation's link, loaded once per session.

    The session's identity map holds objects weakly, so without a strong reference a link was
    loaded again for every use (three or four times per applied roll-up). Kept in
    ``session.info``, it is the same object the identity map returns, so this changes nothing
    but the number of queries.
    """
    links: dict[str, Link] = session.info.setdefault("tix.links", {})
    link = links.get(delegation.link_id)
    if link is None or link not in session:  # (gone from the session after a rollback)
        link = session.get(Link, delegation.link_id)
        if link is None:
            raise NotFound("link not found")
        links[delegation.link_id] = link
    return link


_OF_TICKET = (  # built once: see ``_of_ticket``
    select(Delegation, Link)
    .join(Link, col(Link.id) == col(Delegation.link_id))
    .where(col(Delegation.ticket_id) == bindparam("ticket_id"))
    # id breaks ties: two offers in the same millisecond (the wire's precision) keep one order
    .order_by(col(Delegation.offered_at), col(Delegation.id))
)


def _of_ticket(session: Session, ticket: Ticket) -> list[Delegation]:
    """Every delegation of the ticket (ours to partners first by offer time, and the one we
    received), with their links, in one query: a roll-up needs them all, and the links
    (the upstream's to send on, the partners' for the subtree's labels) go into the session's
    link cache (``_link``), so none is loaded again."""
    links: dict[str, Link] = session.info.setdefault("tix.links", {})
    rows = []
    for delegation, link in session.exec(_OF_TICKET, params={"ticket_id": ticket.id}).all():
        links[link.id] = link
        rows.append(delegation)
    return rows


_DELEGATIONS = cast(Table, Delegation.__table__)  # type: ignore[attr-defined]
# Built once (statement and cache key); a Core statement on the table, so no ORM bulk-update
# machinery runs for it (nothing in the session needs synchronising: see ``_take_seq``).
_NEXT_SEQ = (
    update(_DELEGATIONS)
    .where(_DELEGATIONS.c.id == bindparam("row_id"))
    .values(seq_out=_DELEGATIONS.c.seq_out + 1, updated_at=bindparam("now"))
    .returning(_DELEGATIONS.c.seq_out)
)


def _take_seq(session: Session, delegation: Delegation) -> int:
    """The delegation's next outgoing ``seq``, and ``updated_at`` = now, in ONE statement.

    ``UPDATE … RETURNING`` as ``outbox.next_seq`` (the row stays locked to the end of the
    transaction); both values are set on the object as committed, so its own flush does not
    write the row again unless something else changed.
    """
    now = utcnow()
    with session.no_autoflush:
        if delegation.id is None or delegation in session.new:
            session.flush()
        seq = int(
            session.connection()
            .execute(_NEXT_SEQ, {"row_id": delegation.id, "now": now})
            .scalar_one()
        )
    set_committed_value(delegation, "seq_out", seq)
    set_committed_value(delegation, "updated_at", now)
    return seq


def _send(
    *,
    session: Session,
    identity: Identity,
    delegation: Delegation,
    message_type: str,
    body: Any,
    require_active: bool = True,
    sent_at: datetime | None = None,
    refresh: bool = True,
    supersede: bool = False,
) -> None:
    link = _link(session, delegation)
    if require_active and link.state != "active":
        raise Conflict(f"the link to {link.peer_account} is {link.state}")
    session.add(delegation)
    if refresh and message_type in CLOCK_TYPES:
        sla_service.refresh_ticket(session=session, ticket=_ticket(session, delegation))
    if supersede:
        outbox.supersede_pending(
            session=session,
            account_id=identity.account_id,
            to=delegation.peer_account,
            subject=delegation.delegation_id,
            message_type=message_type,
        )
    outbox.enqueue(
        session=session,
        identity=identity,
        to=delegation.peer_account,
        link_id=delegation.link_id,
        message_type=message_type,
        subject=delegation.delegation_id,
        seq=_take_seq(session, delegation),
        body=body,
        sent_at=sent_at,
    )


def send(
    *, session: Session, identity: Identity, delegation: Delegation, message_type: str, body: Any
) -> None:
    """Queue a message about a delegation to its partner (the link must be active)."""
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type=message_type,
        body=body,
    )


# -- upstream side ------------------------------------------------------------------------------


def delegate(
    *,
    session: Session,
    identity: Identity,
    ticket: Ticket,
    delegation_in: DelegationCreate,
    actor: str,
    settings: Settings | None = None,
) -> Delegation:
    """Offer the ticket to a linked downstream partner (with its shareable attachments)."""
    if ticket.status in states.TERMINAL_TICKET or ticket.status in ("offered", "resolved"):
        raise Conflict(f"a {ticket.status} ticket cannot be delegated")
    upstream = incoming(session=session, ticket=ticket)
    if upstream is not None:
        contract = Contract.model_validate(_link(session, upstream).contract)
        if not contract.allow_subdelegation:
            raise Conflict("the contract with your upstream does not allow sub-delegation")
    link = link_service.active_link_to(
        session=session,
        account_id=identity.account_id,
        partner=delegation_in.partner,
        direction="downstream",
    )
    for existing in outgoing(session=session, ticket=ticket):
        if existing.peer_account == link.peer_account and existing.state in (
            states.OPEN_DELEGATION_STATES
        ):
            raise Conflict(f"already delegated to {link.peer_account}")
    contract = Contract.model_validate(link.contract)
    if contract.categories and ticket.category not in contract.categories:
        raise Invalid(f"the contract with {link.peer_account} does not cover this category")
    assert ticket.id is not None
    delegation = Delegation(
        delegation_id=str(uuid.uuid4()),
        account_id=identity.account_id,
        role="out",
        link_id=link.id,
        peer_account=link.peer_account,
        ticket_id=ticket.id,
        state="offered",
        note=delegation_in.note,
    )
    sla_service.start(delegation=delegation, link=link)
    session.add(delegation)
    session.flush()
    sla_service.refresh(session=session, delegation=delegation, priority=ticket.priority)
    due = None
    if delegation.response_due_at or delegation.resolve_due_at:
        due = m.Due(
            response_by=instant(delegation.response_due_at) if delegation.response_due_at else None,
            resolve_by=instant(delegation.resolve_due_at) if delegation.resolve_due_at else None,
        )
    requester = None
    if contract.share_requester_contacts and ticket.requester:
        requester = m.Contact.model_validate(ticket.requester)
    service_object = m.ServiceObject.model_validate(ticket.service_object or {})
    snapshot = m.TicketSnapshot(
        ref=ticket.number,
        title=ticket.title,
        description=ticket.description,
        priority=ticket.priority,  # type: ignore[arg-type]  # validated by the table's API model
        category=ticket.category,
        service_object=service_object if ticket.service_object else None,
        requester=requester,
        created_at=instant(ticket.created_at),
    )
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="delegation.offer",
        body=m.DelegationOffer(
            ticket=snapshot,
            chain_id=ticket.chain_id,
            depth=ticket.depth + 1,
            note=delegation_in.note,
            due=due,
        ),
        sent_at=delegation.offered_at,  # the downstream's clocks start at the signed send time
    )
    if settings is not None:  # attachments made before the offer follow it
        attachment_service.send_to_delegation(
            session=session, identity=identity, settings=settings, delegation=delegation
        )
    ticket_service.record(
        session=session,
        ticket=ticket,
        kind="delegated",
        actor=actor,
        detail={"partner": link.peer_account, "delegation_id": delegation.delegation_id},
    )
    if delegation.delegation_id in sla_service.squeezed(upstream, [delegation]):
        assert upstream is not None and upstream.resolve_due_at and delegation.resolve_due_at
        ticket_service.record(
            session=session,
            ticket=ticket,
            kind="sla_squeeze",
            actor=actor,
            detail={
                "delegation_id": delegation.delegation_id,
                "partner": link.peer_account,
                "our_resolve_by": instant(upstream.resolve_due_at),
                "their_resolve_by": instant(delegation.resolve_due_at),
            },
        )
    if ticket.status == "new":
        ticket_service.set_status(session=session, ticket=ticket, target="open", actor=actor)
    roll_up(session=session, identity=identity, ticket=ticket)
    return delegation


def recall(
    *, session: Session, identity: Identity, delegation: Delegation, reason: str, actor: str
) -> None:
    if delegation.role != "out" or delegation.state not in states.OPEN_DELEGATION_STATES:
        raise Conflict(f"a {delegation.state} delegation cannot be recalled")
    delegation.state = "recalled"
    delegation.reason = reason
    delegation.closed_at = utcnow()
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="delegation.recall",
        body=m.DelegationRecall(reason=reason, recalled_at=instant(utcnow())),
    )
    _record_on_ticket(session, delegation, "recalled", actor, {"reason": reason})
    roll_up(session=session, identity=identity, ticket=_ticket(session, delegation))


def confirm(
    *,
    session: Session,
    identity: Identity,
    delegation: Delegation,
    note: str,
    actor: str,
    roll_up_after: bool = True,
) -> None:
    """Accept a partner's resolution; ``roll_up_after=False`` when the caller rolls up itself
    (a cascade from our upstream's confirmation, which closes our ticket too)."""
    if delegation.role != "out" or delegation.state != "resolved":
        raise Conflict(f"a {delegation.state} delegation cannot be confirmed")
    delegation.state = "confirmed"
    delegation.closed_at = utcnow()
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="resolution.confirm",
        body=m.ResolutionConfirm(note=note, confirmed_at=instant(utcnow())),
    )
    _record_on_ticket(session, delegation, "confirmed", actor, {})
    if roll_up_after:
        roll_up(session=session, identity=identity, ticket=_ticket(session, delegation))


def rework(
    *,
    session: Session,
    identity: Identity,
    delegation: Delegation,
    reason: str,
    actor: str,
    roll_up_after: bool = True,
) -> None:
    """Return a partner's resolution; ``roll_up_after`` as for ``confirm``."""
    if delegation.role != "out" or delegation.state != "resolved":
        raise Conflict(f"a {delegation.state} delegation cannot be returned for rework")
    if not reason:
        raise Invalid("a rework needs a reason")
    delegation.state = "in_progress"
    sla_service.record_rework(
        delegation=delegation, resolved_at=delegation.resolved_at, at=utcnow()
    )
    delegation.resolved_at = None
    delegation.reason = reason
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="resolution.rework",
        body=m.ResolutionRework(reason=reason, requested_at=instant(utcnow())),
    )
    _record_on_ticket(session, delegation, "rework", actor, {"reason": reason})
    if roll_up_after:
        roll_up(session=session, identity=identity, ticket=_ticket(session, delegation))


def _ticket(session: Session, delegation: Delegation) -> Ticket:
    # ``session.get``: the ticket is usually in the session already (no query then).
    ticket = session.get(Ticket, delegation.ticket_id)
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


def _record_on_ticket(
    session: Session, delegation: Delegation, kind: str, actor: str | None, detail: dict[str, Any]
) -> None:
    ticket = _ticket(session, delegation)
    ticket_service.record(
        session=session,
        ticket=ticket,
        kind=kind,
        actor=actor,
        detail={"delegation_id": delegation.delegation_id, "partner": delegation.peer_account}
        | detail,
    )


# -- downstream side ----------------------------------------------------------------------------


def accept(*, session: Session, identity: Identity, ticket: Ticket, actor: str) -> Delegation:
    """Accept an incoming offer: the ticket opens and the upstream is told."""
    delegation = incoming(session=session, ticket=ticket)
    if delegation is None or ticket.status != "offered":
        raise Conflict(f"a {ticket.status} ticket is not an open offer")
    ticket_service.set_status(session=session, ticket=ticket, target="open", actor=actor)
    delegation.state = "accepted"
    delegation.accepted_at = utcnow()
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="delegation.accept",
        body=m.DelegationAccept(ref=ticket.number, accepted_at=instant(delegation.accepted_at)),
    )
    return delegation


def decline(
    *, session: Session, identity: Identity, ticket: Ticket, reason: str, actor: str
) -> Delegation:
    delegation = incoming(session=session, ticket=ticket)
    if delegation is None or ticket.status != "offered":
        raise Conflict(f"a {ticket.status} ticket is not an open offer")
    ticket_service.set_status(
        session=session, ticket=ticket, target="declined", note=reason, actor=actor
    )
    delegation.state = "declined"
    delegation.declined_at = utcnow()
    delegation.reason = reason
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="delegation.decline",
        body=m.DelegationDecline(reason=reason, declined_at=instant(delegation.declined_at)),
    )
    return delegation


def change_status(
    *, session: Session, identity: Identity, ticket: Ticket, target: str, note: str, actor: str
) -> None:
    """A local status change, rolled up to the upstream if the ticket came from one."""
    if ticket.upstream_account and target in states.UPSTREAM_OWNED:
        raise Conflict(f"only {ticket.upstream_account} can make this ticket {target}")
    if ticket.status == "offered":
        raise Conflict("accept or decline the offer first")
    changed = ticket_service.set_status(
        session=session, ticket=ticket, target=target, note=note, actor=actor
    )
    if changed:
        roll_up(session=session, identity=identity, ticket=ticket, note=note)


def send_update(
    *, session: Session, identity: Identity, ticket: Ticket, changes: dict[str, Any]
) -> None:
    """Tell every open downstream what changed of the ticket (title, priority, addenda)."""
    if not {"title", "priority", "addendum"} & set(changes):
        return
    body = m.TicketUpdate.model_validate(
        {
            "title": ticket.title if "title" in changes else None,
            "priority": ticket.priority if "priority" in changes else None,
            "addendum": changes.get("addendum"),
        }
    )
    for d in outgoing(session=session, ticket=ticket):
        if d.state in states.OPEN_DELEGATION_STATES and _link(session, d).state == "active":
            _send(
                session=session,
                identity=identity,
                delegation=d,
                message_type="ticket.update",
                body=body,
            )


def rate(
    *, session: Session, identity: Identity, ticket: Ticket, score: int, comment: str, actor: str
) -> None:
    """Rate the result of a resolved ticket; the rating travels down to whoever did the work."""
    if ticket.status not in ("resolved", "closed"):
        raise Conflict("only a resolved or closed ticket can be rated")
    ticket.rating, ticket.rating_comment = score, comment
    session.add(ticket)
    ticket_service.record(
        session=session, ticket=ticket, kind="rated", actor=actor, detail={"score": score}
    )
    _pass_rating_down(session, identity, ticket, m.Rating(score=score, comment=comment))


def _pass_rating_down(session: Session, identity: Identity, ticket: Ticket, body: m.Rating) -> None:
    for d in outgoing(session=session, ticket=ticket):
        if d.state in ("resolved", "confirmed") and _link(session, d).state == "active":
            _send(
                session=session, identity=identity, delegation=d, message_type="rating", body=body
            )


def subtree_for(
    *, session: Session, ticket: Ticket, rows: Sequence[Delegation] | None = None
) -> list[dict[str, Any]]:
    """Our outgoing delegations of this ticket with what each partner rolled up (undisclosed).

    ``rows``: the ticket's delegations by offer time when the caller already loaded them.
    """
    nodes = []
    if rows is None:
        rows = outgoing(session=session, ticket=ticket)
    for d in (r for r in rows if r.role == "out"):
        view = chain.DelegationView(
            id=d.delegation_id,
            partner=d.peer_account,
            partner_label=_link(session, d).peer_label or d.peer_account,
            level=ticket.depth + 1,
            state=d.state,
            status=d.remote_status,
            assignee_role=d.remote_assignee_role,
            offered_at=d.offered_at,
            accepted_at=d.accepted_at,
            resolved_at=d.resolved_at,
            subtree=list(d.subtree or []),
            response_by=d.response_due_at,
            resolve_by=d.resolve_due_at,
            sla_state=d.sla_state,
        )
        nodes.append(chain.node_of(view))
    return nodes


def _assignee_role(session: Session, ticket: Ticket) -> str | None:
    """The role of the ticket's assignee (never the person: upstreams see roles only)."""
    if not ticket.assignee:
        return None
    user = user_service.get_by_username(session=session, username=ticket.assignee)
    return user.role if user is not None else "unknown"


def roll_up(*, session: Session, identity: Identity, ticket: Ticket, note: str = "") -> None:
    """Tell our upstream our status and our subtree, as its link's contract discloses it."""
    rows = _of_ticket(session, ticket)  # the one query for the ticket's delegations
    delegation = next((r for r in rows if r.role == "in"), None)
    if (
        delegation is None
        or ticket.status == "offered"
        or delegation.state in ("declined", "recalled")
    ):
        sla_service.refresh_ticket(session=session, ticket=ticket, rows=rows)
        return
    sla_service.observe_status(delegation=delegation, status=ticket.status, at=ticket.updated_at)
    link = _link(session, delegation)
    if link.state != "active":
        sla_service.refresh_ticket(session=session, ticket=ticket, rows=rows)
        return  # nothing crosses a suspended link; resuming it rolls the current state up
    contract = Contract.model_validate(link.contract)
    new_state = states.delegation_state_for(ticket.status, delegation.state)
    delegation.state = new_state
    delegation.resolved_at = ticket.resolved_at if new_state in ("resolved", "confirmed") else None
    sla_service.refresh_ticket(session=session, ticket=ticket, rows=rows)
    subtree = chain.disclose(
        subtree_for(session=session, ticket=ticket, rows=rows), contract.disclose_subcontractors
    )
    _send(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type="ticket.status",
        refresh=False,  # refreshed just above, before the subtree was built
        supersede=True,  # state, not deltas: an unsent older roll-up says nothing more
        body=m.TicketStatus.model_validate(
            {
                "ref": ticket.number,
                "status": ticket.status,
                "changed_at": instant(ticket.updated_at),
                "resolution": ticket.resolution
                if ticket.status in ("resolved", "closed")
                else None,
                "accepted_at": instant(delegation.accepted_at) if delegation.accepted_at else None,
                "resolved_at": instant(ticket.resolved_at)
                if ticket.resolved_at and ticket.status in ("resolved", "closed")
                else None,
                "assignee_role": _assignee_role(session, ticket),
                "note": note or None,
                "subtree": subtree,
            }
        ),
    )


def comment(
    *, session: Session, identity: Identity, ticket: Ticket, comment_in: CommentCreate, actor: str
) -> None:
    """A local comment; ``partner`` and ``public`` ones travel along the whole chain."""
    created = ticket_service.add_comment(
        session=session, ticket=ticket, comment_in=comment_in, author=actor
    )
    if created is None or comment_in.visibility == "internal":
        return
    body = m.TicketComment(
        comment_id=created.comment_id,
        author=f"{actor} ({identity.label})"[:500],
        body=created.body,
        visibility=comment_in.visibility,
        created_at=instant(created.created_at),
        origin_level=ticket.depth,
    )
    forward_comment(session=session, identity=identity, ticket=ticket, body=body)


def forward_comment(
    *,
    session: Session,
    identity: Identity,
    ticket: Ticket,
    body: m.TicketComment,
    source: Delegation | None = None,
) -> None:
    """Send a comment over every open link of the ticket except the one it came from.

    Going up, a comment that came from below us speaks for one of our subcontractors, so the
    upstream link's ``disclose_subcontractors`` decides who it appears to be from.
    """
    targets = outgoing(session=session, ticket=ticket)
    upstream = incoming(session=session, ticket=ticket)
    if upstream is not None:
        targets.append(upstream)
    for d in targets:
        if source is not None and d.id == source.id:
            continue
        link = _link(session, d)
        if d.state not in states.OPEN_DELEGATION_STATES or link.state != "active":
            continue
        out = body
        if d.role == "in" and source is not None and source.role == "out":
            policy = Contract.model_validate(link.contract).disclose_subcontractors
            origin = body.origin_level if body.origin_level is not None else ticket.depth + 1
            author = chain.author_upstream(
                policy, body.author, origin_level=origin, forwarder=identity.label[:500]
            )
            out = body.model_copy(update={"author": author or identity.label[:500]})
        _send(
            session=session,
            identity=identity,
            delegation=d,
            message_type="ticket.comment",
            body=out,
        )


# -- applying what partners send ------------------------------------------------------------------


def apply_offer(
    *,
    session: Session,
    identity: Identity,
    link: Link,
    subject: str,
    body: m.DelegationOffer,
    offered_at: datetime | None = None,
) -> Delegation:
    if link.direction != "upstream":
        raise RejectedMessage("wrong_direction", "offers come from an upstream")
    existing = session.exec(
        select(Delegation).where(
            Delegation.account_id == identity.account_id, Delegation.delegation_id == subject
        )
    ).first()
    if existing is not None:
        raise RejectedMessage("duplicate_subject", subject)
    snap = body.ticket
    ticket_in = TicketCreate(
        title=snap.title,
        description=snap.description,
        priority=snap.priority,
        category=snap.category,
        service_object=ServiceObjectIn.model_validate(snap.service_object.model_dump())
        if snap.service_object
        else None,
        requester=ContactIn.model_validate(snap.requester.model_dump()) if snap.requester else None,
    )
    ticket = ticket_service.create(
        session=session,
        account_id=identity.account_id,
        ticket_in=ticket_in,
        status="offered",
        chain_id=body.chain_id,
        depth=body.depth,
        upstream=(link.peer_account, subject, snap.ref),
    )
    assert ticket.id is not None
    delegation = Delegation(
        delegation_id=subject,
        account_id=identity.account_id,
        role="in",
        link_id=link.id,
        peer_account=link.peer_account,
        ticket_id=ticket.id,
        state="offered",
        remote_ref=snap.ref,
        note=body.note,
    )
    # The clocks start when the offer was sent (its signed time, never later than now), so
    # both ends count from the same instant.
    sent = min(aware(offered_at), utcnow()) if offered_at is not None else None
    sla_service.start(delegation=delegation, link=link, offered_at=sent)
    session.add(delegation)
    session.flush()
    sla_service.refresh_ticket(session=session, ticket=ticket)
    if Contract.model_validate(link.contract).auto_accept:
        accept(session=session, identity=identity, ticket=ticket, actor="auto-accept")
    return delegation


def apply(
    *,
    session: Session,
    identity: Identity,
    delegation: Delegation,
    message_type: str,
    body: Any,
    settings: Settings | None = None,
) -> None:
    """Apply a partner's message about an existing delegation (checks already passed)."""
    handler = _APPLIERS.get((delegation.role, message_type))
    if handler is None:
        if not any(kind == message_type for _, kind in _APPLIERS):
            raise RejectedMessage("unsupported_type", f"{message_type} is not handled yet")
        raise RejectedMessage(
            "wrong_direction", f"{message_type} on a {delegation.role} delegation"
        )
    # Without autoflush: every query here would otherwise write the changes made so far (one
    # flush per query, eight per applied roll-up). What the queries read does not depend on
    # them: rows are found by ids and roles that never change, and the objects already in the
    # session come back with their changes. The inbox flushes once, with its own row.
    with session.no_autoflush:
        if message_type in _NEEDS_SETTINGS:
            handler(session, identity, delegation, body, settings)
        else:
            handler(session, identity, delegation, body)
        delegation.updated_at = utcnow()
        session.add(delegation)
        if message_type in CLOCK_TYPES - _ROLLS_UP:
            sla_service.refresh_ticket(session=session, ticket=_ticket(session, delegation))


def _up_accept(
    session: Session, identity: Identity, d: Delegation, body: m.DelegationAccept
) -> None:
    if d.state != "offered":
        return
    d.remote_status = "open"
    _mark_accepted(session, d, ref=body.ref, accepted_at=body.accepted_at)
    roll_up(session=session, identity=identity, ticket=_ticket(session, d))


def _mark_accepted(session: Session, d: Delegation, *, ref: str, accepted_at: str) -> None:
    """The partner took the job: whichever of its messages says so first (accept or status)."""
    d.state = "accepted"
    d.remote_ref = ref
    d.accepted_at = parse_instant(accepted_at)
    ticket = _ticket(session, d)
    _partner_event(session, ticket, d, "partner_accepted", {"ref": ref})
    if ticket.status in ("new", "open", "reopened"):
        ticket_service.set_status(
            session=session, ticket=ticket, target="in_progress", actor=d.peer_account
        )


def _up_decline(
    session: Session, identity: Identity, d: Delegation, body: m.DelegationDecline
) -> None:
    if d.state != "offered":
        return
    d.state = "declined"
    d.remote_status = "declined"
    d.reason = body.reason
    d.declined_at = parse_instant(body.declined_at)
    ticket = _ticket(session, d)
    _partner_event(session, ticket, d, "partner_declined", {"reason": body.reason})
    roll_up(session=session, identity=identity, ticket=ticket)


def _up_status(session: Session, identity: Identity, d: Delegation, body: m.TicketStatus) -> None:
    if d.state in ("declined", "recalled"):
        return
    previous = d.remote_status
    if d.state == "offered" and body.status not in ("offered", "declined", "cancelled"):
        # This status overtook the partner's accept (which will now be stale): it says the
        # same, so do what the accept would have done.
        _mark_accepted(session, d, ref=body.ref, accepted_at=body.accepted_at or body.changed_at)
    d.remote_status = body.status
    d.remote_ref = body.ref
    d.remote_assignee_role = body.assignee_role
    if body.accepted_at:
        d.accepted_at = parse_instant(body.accepted_at)
    sla_service.observe_status(delegation=d, status=body.status, at=parse_instant(body.changed_at))
    d.state = states.delegation_state_for(body.status, d.state)
    if body.status in ("resolved", "closed"):
        d.resolved_at = parse_instant(body.resolved_at or body.changed_at)
        d.resolution = body.resolution
    else:  # state, not deltas: a ticket that left "resolved" has no resolution any more
        d.resolved_at = None
        d.resolution = None
    before = {node["id"]: node for node in chain.walk(d.subtree or [])}
    d.subtree = [node.model_dump(mode="json") for node in body.subtree]
    ticket = _ticket(session, d)
    if previous != body.status:
        _partner_event(session, ticket, d, "partner_status", {"from": previous, "to": body.status})
    for node in chain.walk(d.subtree):
        old = before.get(node["id"])
        if old is None or (old.get("status"), old.get("state")) != (
            node.get("status"),
            node.get("state"),
        ):
            ticket_service.record(
                session=session,
                ticket=ticket,
                kind="chain_status",
                actor=node.get("partner_label"),
                source_account=node.get("partner"),
                level=int(node["level"]),
                detail={
                    "delegation_id": node["id"],
                    "from": old.get("status") if old else None,
                    "to": node.get("status"),
                    "state": node.get("state"),
                },
            )
    roll_up(session=session, identity=identity, ticket=ticket)


def _comment(session: Session, identity: Identity, d: Delegation, body: m.TicketComment) -> None:
    ticket = _ticket(session, d)
    created = ticket_service.add_comment(
        session=session,
        ticket=ticket,
        comment_in=CommentCreate(body=body.body, visibility=body.visibility),
        author=body.author,
        source_account=d.peer_account,
        comment_id=body.comment_id,
        created_at=parse_instant(body.created_at),
        level=ticket.depth + 1 if d.role == "out" else ticket.depth - 1,
    )
    if created is not None:  # not a repeat: pass it along the chain
        forward_comment(session=session, identity=identity, ticket=ticket, body=body, source=d)


def _attachment(
    session: Session,
    identity: Identity,
    d: Delegation,
    body: m.TicketAttachment,
    settings: Settings | None,
) -> None:
    if settings is None:
        raise RejectedMessage("not_applicable", "this receiver keeps no attachments")
    attachment_service.apply_attachment(
        session=session, identity=identity, delegation=d, body=body, settings=settings
    )


def _down_recall(
    session: Session, identity: Identity, d: Delegation, body: m.DelegationRecall
) -> None:
    if d.state in states.TERMINAL_DELEGATION_STATES:
        return  # already over: a recall cannot reopen or cancel a finished delegation
    d.state = "recalled"
    d.reason = body.reason
    d.closed_at = utcnow()
    ticket = _ticket(session, d)
    ticket_service.set_status(
        session=session,
        ticket=ticket,
        target="cancelled",
        note=body.reason,
        source_account=d.peer_account,
        check=False,
    )
    for below in outgoing(session=session, ticket=ticket):
        if below.state in states.OPEN_DELEGATION_STATES and _can_cascade(
            session, ticket, below, "recall"
        ):
            recall(
                session=session,
                identity=identity,
                delegation=below,
                reason=body.reason or "recalled upstream",
                actor=d.peer_account,
            )


def _down_update(session: Session, identity: Identity, d: Delegation, body: m.TicketUpdate) -> None:
    ticket = _ticket(session, d)
    changed = {}
    if body.title is not None and body.title != ticket.title:
        ticket.title = changed["title"] = body.title
    if body.priority is not None and body.priority != ticket.priority:
        ticket.priority = changed["priority"] = body.priority
    if body.addendum:
        ticket.description = (ticket.description + "\n\n" + body.addendum).strip()[:20_000]
        changed["addendum"] = body.addendum
    if changed:
        ticket.updated_at = utcnow()
        session.add(ticket)
        _partner_event(session, ticket, d, "partner_update", {"fields": sorted(changed)})
        send_update(session=session, identity=identity, ticket=ticket, changes=changed)


def _can_cascade(session: Session, ticket: Ticket, below: Delegation, action: str) -> bool:
    """Whether a cascade may go on to ``below``; a suspended link holds it (and says so)."""
    if _link(session, below).state == "active":
        return True
    ticket_service.record(
        session=session,
        ticket=ticket,
        kind="cascade_held",
        detail={
            "action": action,
            "delegation_id": below.delegation_id,
            "partner": below.peer_account,
            "reason": "the link is suspended; repeat the action after resuming it",
        },
    )
    return False


def _down_rating(session: Session, identity: Identity, d: Delegation, body: m.Rating) -> None:
    ticket = _ticket(session, d)
    ticket.rating, ticket.rating_comment = body.score, body.comment
    session.add(ticket)
    _partner_event(session, ticket, d, "rated", {"score": body.score})
    _pass_rating_down(session, identity, ticket, body)


def _down_confirm(
    session: Session, identity: Identity, d: Delegation, body: m.ResolutionConfirm
) -> None:
    if d.state in states.TERMINAL_DELEGATION_STATES:
        return
    d.state = "confirmed"
    d.closed_at = utcnow()
    ticket = _ticket(session, d)
    ticket_service.set_status(
        session=session, ticket=ticket, target="closed", source_account=d.peer_account, check=False
    )
    for below in outgoing(session=session, ticket=ticket):
        if below.state == "resolved" and _can_cascade(session, ticket, below, "confirm"):
            confirm(
                session=session,
                identity=identity,
                delegation=below,
                note=body.note,
                actor=d.peer_account,
                roll_up_after=False,  # once, below, with every cascade in it
            )
    roll_up(session=session, identity=identity, ticket=ticket)


def _down_rework(
    session: Session, identity: Identity, d: Delegation, body: m.ResolutionRework
) -> None:
    if d.state in states.TERMINAL_DELEGATION_STATES:
        return
    d.state = "in_progress"
    sla_service.record_rework(
        delegation=d, resolved_at=d.resolved_at, at=parse_instant(body.requested_at)
    )
    d.resolved_at = None
    d.reason = body.reason
    ticket = _ticket(session, d)
    ticket_service.set_status(
        session=session,
        ticket=ticket,
        target="reopened",
        note=body.reason,
        source_account=d.peer_account,
        check=False,
    )
    for below in outgoing(session=session, ticket=ticket):
        if below.state == "resolved" and _can_cascade(session, ticket, below, "rework"):
            rework(
                session=session,
                identity=identity,
                delegation=below,
                reason=body.reason,
                actor=d.peer_account,
                roll_up_after=False,  # once, below, with every cascade in it
            )
    roll_up(session=session, identity=identity, ticket=ticket)


def _partner_event(
    session: Session, ticket: Ticket, d: Delegation, kind: str, detail: dict[str, Any]
) -> None:
    ticket_service.record(
        session=session,
        ticket=ticket,
        kind=kind,
        actor=d.peer_account,
        source_account=d.peer_account,
        level=ticket.depth + 1 if d.role == "out" else ticket.depth - 1,
        detail={"delegation_id": d.delegation_id} | detail,
    )


_APPLIERS: dict[tuple[str, str], Any] = {
    ("out", "delegation.accept"): _up_accept,
    ("out", "delegation.decline"): _up_decline,
    ("out", "ticket.status"): _up_status,
    ("out", "ticket.comment"): _comment,
    ("in", "ticket.comment"): _comment,
    ("out", "ticket.attachment"): _attachment,
    ("in", "ticket.attachment"): _attachment,
    ("in", "delegation.recall"): _down_recall,
    ("in", "ticket.update"): _down_update,
    ("in", "resolution.confirm"): _down_confirm,
    ("in", "resolution.rework"): _down_rework,
    ("in", "rating"): _down_rating,
}

# Messages that change what an SLA clock reads (times, states, priority): sending or applying
# one refreshes the ticket's clocks. Comments, attachments, ratings and SLA events do not.
CLOCK_TYPES = frozenset(
    {
        "delegation.offer",
        "delegation.accept",
        "delegation.decline",
        "delegation.recall",
        "ticket.update",
        "ticket.status",
        "resolution.confirm",
        "resolution.rework",
    }
)
# Appliers that end in ``roll_up``, which refreshes the ticket's clocks itself.
_ROLLS_UP = frozenset(
    {
        "delegation.accept",
        "delegation.decline",
        "ticket.status",
        "resolution.confirm",
        "resolution.rework",
    }
)

# Appliers that also take the node's settings (blob store, size limits).
_NEEDS_SETTINGS = frozenset({"ticket.attachment"})

# Messages whose body is state, gated by ``seq``; the others are idempotent by their own ids.
STATEFUL_TYPES = frozenset(
    {
        "delegation.accept",
        "delegation.decline",
        "delegation.recall",
        "ticket.update",
        "ticket.status",
        "resolution.confirm",
        "resolution.rework",
        "rating",
    }
)


def delivery(
    *, session: Session, delegation: Delegation, unsent: Sequence[OutboxMessage] | None = None
) -> dict[str, Any]:
    """Our messages about this delegation that have not left yet, and why (if we know).

    ``unsent``: those rows when the caller already loaded them (a page of tickets).
    """
    rows = unsent
    if rows is None:
        rows = session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.account_id == delegation.account_id,
                OutboxMessage.subject == delegation.delegation_id,
                # not "sent" and not "superseded" (a newer state went in its place)
                col(OutboxMessage.state).in_(("pending", "failed")),
            )
            .order_by(col(OutboxMessage.id))
        ).all()
    errors = [row.last_error for row in rows if row.last_error]
    return {
        "pending": sum(1 for row in rows if row.state == "pending"),
        "failed": sum(1 for row in rows if row.state == "failed"),
        "last_error": errors[-1] if errors else None,
    }


def to_public(
    *,
    session: Session,
    delegation: Delegation,
    unsent: Sequence[OutboxMessage] | None = None,
    siblings: Sequence[Delegation] | None = None,
) -> dict[str, Any]:
    """A delegation in the API's shape; ``unsent`` and ``siblings`` (every delegation of its
    ticket) when the caller already loaded them, else they are queried."""
    return {
        "delivery": delivery(session=session, delegation=delegation, unsent=unsent),
        "id": delegation.delegation_id,
        "role": delegation.role,
        "partner": delegation.peer_account,
        "state": delegation.state,
        "status": delegation.remote_status,
        "ref": delegation.remote_ref,
        "note": delegation.note,
        "reason": delegation.reason,
        "resolution": delegation.resolution,
        "offered_at": instant(delegation.offered_at),
        "accepted_at": instant(delegation.accepted_at) if delegation.accepted_at else None,
        "resolved_at": instant(delegation.resolved_at) if delegation.resolved_at else None,
        "due": {
            "response_by": instant(delegation.response_due_at)
            if delegation.response_due_at
            else None,
            "resolve_by": instant(delegation.resolve_due_at) if delegation.resolve_due_at else None,
        },
        "sla": {
            "state": delegation.sla_state,
            "squeeze": _squeezed(session, delegation, siblings),
        },
    }


def _squeezed(
    session: Session, delegation: Delegation, siblings: Sequence[Delegation] | None = None
) -> bool:
    """Whether our outgoing delegation's resolution deadline falls after our own."""
    if delegation.role != "out" or delegation.resolve_due_at is None:
        return False
    if siblings is not None:
        upstream = next((d for d in siblings if d.role == "in"), None)
    else:
        upstream = incoming(session=session, ticket=_ticket(session, delegation))
    return bool(sla_service.squeezed(upstream, [delegation]))


def roll_up_link(*, session: Session, identity: Identity, link: Link) -> int:
    """Roll up every open ticket we received over ``link`` (after it was resumed)."""
    rows = session.exec(
        select(Delegation).where(
            Delegation.link_id == link.id,
            Delegation.role == "in",
            col(Delegation.state).in_(list(states.OPEN_DELEGATION_STATES)),
        )
    ).all()
    for row in rows:
        roll_up(session=session, identity=identity, ticket=_ticket(session, row))
    return len(rows)
