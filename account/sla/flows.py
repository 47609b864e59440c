"""SLA events: the sweep that finds clocks passing 75 % and 100 %, and their way up the chain.

**Who emits.** The upstream end of a delegation watches its clocks: it holds the contract, and
it must learn of a breach even when the partner's node is down or only answers by e-mail. When
a clock of one of our outgoing delegations reaches a threshold, we record a ``SlaEventRecord``
(unique per delegation, clock, kind and clock cycle, so an event happens once even if the sweep
runs twice or the node restarts mid-way), write it on the ticket's timeline, send ``sla.event``
to our own upstream and roll the ticket up (its subtree now carries the new ``sla_state``).

**Up the chain.** A node that receives ``sla.event`` records it (once per event id), writes the
timeline and passes it on to its own upstream, filtered by that link's disclosure: ``named``
passes the company, ``anonymous`` replaces it by "subcontractor, level N", ``hidden`` stops it.

**The sweep** selects delegations whose ``sla_next_check_at`` has come (an indexed column, so
no tick scans every ticket), oldest first and in bounded batches. A node that was down across
deadlines finds them all due at its first sweep and emits each event once, dated when the
threshold was actually reached.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.context import Identity
from account.db import session_scope
from account.delegations import chain
from account.delegations import service as delegation_service
from account.delegations.models import Delegation
from account.links.models import Contract, Link
from account.sla import service as sla_service
from account.sla.clocks import Clock
from account.sla.models import SlaEventRecord
from account.tickets import service as ticket_service
from account.tickets.models import Ticket
from exchange.clock import aware, instant, parse_instant, utcnow
from schemas import messages as m

__all__ = ["SWEEP_BATCH", "apply_event", "sweep", "sweep_once"]

SWEEP_BATCH = 500


def _ticket(session: Session, delegation: Delegation) -> Ticket:
    return ticket_service.get_by_id(session=session, ticket_id=delegation.ticket_id)


def _emit(
    session: Session, identity: Identity, ticket: Ticket, d: Delegation, clock: Clock, kind: str
) -> bool:
    """Record and send one event for our outgoing delegation; False if it happened before."""
    cycle = sla_service.cycle_of(d, clock.name)
    key = f"{d.delegation_id}:{clock.name}:{kind}:{cycle}"
    exists = session.exec(
        select(SlaEventRecord.id).where(
            SlaEventRecord.account_id == identity.account_id, SlaEventRecord.dedupe_key == key
        )
    ).first()
    if exists is not None:
        return False
    threshold = clock.warn_at if kind == "warning" else clock.due_at
    due_at = clock.due_at or threshold or utcnow()
    at = min(aware(threshold), utcnow()) if threshold is not None else utcnow()
    link = session.get(Link, d.link_id)
    label = (link.peer_label if link else "") or d.peer_account
    event = m.SlaEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,  # type: ignore[arg-type]  # "warning" | "breach" from Clock.reached
        clock=clock.name,
        level=ticket.depth + 1,
        partner=d.peer_account,
        partner_label=label[:500],
        delegation=d.delegation_id,
        due_at=instant(due_at),
        at=instant(at),
    )
    _store(session, identity, ticket, d, event, origin="local", dedupe_key=key)
    return True


def _store(
    session: Session,
    identity: Identity,
    ticket: Ticket,
    d: Delegation,
    event: m.SlaEvent,
    *,
    origin: str,
    dedupe_key: str,
) -> None:
    assert ticket.id is not None
    session.add(
        SlaEventRecord(
            account_id=identity.account_id,
            event_id=event.event_id,
            dedupe_key=dedupe_key,
            ticket_id=ticket.id,
            delegation_id=d.delegation_id,
            chain_delegation_id=event.delegation,
            origin=origin,
            kind=event.kind,
            clock=event.clock,
            level=event.level,
            partner=event.partner,
            partner_label=event.partner_label,
            due_at=parse_instant(event.due_at),
            at=parse_instant(event.at),
        )
    )
    ticket_service.record(
        session=session,
        ticket=ticket,
        kind=f"sla_{event.kind}",
        actor=event.partner_label,
        source_account=event.partner,
        level=event.level,
        detail={
            "clock": event.clock,
            "due_at": event.due_at,
            "at": event.at,
            "delegation_id": event.delegation,
        },
    )
    session.flush()
    _pass_up(session, identity, ticket, event)


def _pass_up(session: Session, identity: Identity, ticket: Ticket, event: m.SlaEvent) -> None:
    """Send the event to our upstream, as that link's contract discloses the company."""
    upstream = delegation_service.incoming(session=session, ticket=ticket)
    if upstream is None or upstream.state in sla_service.VOID_STATES:
        return
    link = session.get(Link, upstream.link_id)
    if link is None or link.state != "active":
        return
    policy = Contract.model_validate(link.contract).disclose_subcontractors
    if policy == "hidden":
        return
    out = event
    if policy == "anonymous":
        out = event.model_copy(
            update={"partner": None, "partner_label": f"subcontractor, level {event.level}"}
        )
    delegation_service.send(
        session=session, identity=identity, delegation=upstream, message_type="sla.event", body=out
    )


def apply_event(
    *, session: Session, identity: Identity, delegation: Delegation, body: m.SlaEvent
) -> None:
    """An ``sla.event`` from our partner below: record it once, show it, pass it on up."""
    exists = session.exec(
        select(SlaEventRecord.id).where(
            SlaEventRecord.account_id == identity.account_id,
            SlaEventRecord.event_id == body.event_id,
        )
    ).first()
    if exists is not None:
        return
    ticket = _ticket(session, delegation)
    _store(
        session,
        identity,
        ticket,
        delegation,
        body,
        origin="received",
        dedupe_key=f"rx:{body.event_id}",
    )
    sla_service.refresh_ticket(session=session, ticket=ticket)


def _due(session: Session, identities: Mapping[str, Identity], now: datetime) -> list[Delegation]:
    """The next batch of delegations whose check time has come, oldest first."""
    return list(
        session.exec(
            select(Delegation)
            .where(
                col(Delegation.account_id).in_(list(identities)),
                col(Delegation.sla_next_check_at).is_not(None),
                col(Delegation.sla_next_check_at) <= now,
            )
            .order_by(col(Delegation.sla_next_check_at))
            .limit(SWEEP_BATCH)
            .with_for_update()
        ).all()
    )


def _process(
    session: Session,
    identities: Mapping[str, Identity],
    rows: list[Delegation],
    now: datetime,
) -> int:
    emitted = 0
    for d in rows:
        ticket = _ticket(session, d)
        clocks = sla_service.clocks_of(d, ticket.priority, now)
        sent = 0
        if d.role == "out" and clocks is not None:
            identity = identities[d.account_id]
            for clock in (clocks.response, clocks.resolution):
                if clock is None:
                    continue
                for kind in clock.reached:
                    sent += _emit(session, identity, ticket, d, clock, kind)
        if sent:
            # Rolling up refreshes every clock of the ticket (the events are recorded now, so
            # nothing is left to wake up for) before the subtree goes up with its new state.
            delegation_service.roll_up(
                session=session, identity=identities[d.account_id], ticket=ticket
            )
        else:
            sla_service.refresh_ticket(session=session, ticket=ticket, now=now)
        emitted += sent
    return emitted


def sweep_once(
    *, session: Session, identities: Mapping[str, Identity], now: datetime | None = None
) -> int:
    """Evaluate one batch of delegations whose next check has come; returns events sent."""
    now = now or utcnow()
    return _process(session, identities, _due(session, identities, now), now)


def sweep(engine: Engine, identities: Mapping[str, Identity]) -> tuple[int, int]:
    """Sweep until nothing is due (in batches, each its own transaction): (checked, events)."""
    checked = events = 0
    for _ in range(1_000):  # bounded: 500 000 delegations per call at most
        with session_scope(engine) as session:
            now = utcnow()
            rows = _due(session, identities, now)
            if not rows:
                break
            checked += len(rows)
            events += _process(session, identities, rows, now)
    return checked, events


Events = dict[str, list[dict[str, Any]]]


def chain_events(*, session: Session, account_id: str, ticket: Ticket) -> Events:
    """SLA events of a ticket by the chain delegation they concern (for the chain view)."""
    rows = session.exec(
        select(SlaEventRecord)
        .where(SlaEventRecord.account_id == account_id, SlaEventRecord.ticket_id == ticket.id)
        .order_by(col(SlaEventRecord.at))
    ).all()
    out: Events = {}
    for row in rows:
        key = row.chain_delegation_id or row.delegation_id
        out.setdefault(key, []).append(
            {
                "kind": row.kind,
                "clock": row.clock,
                "level": row.level,
                "partner": row.partner,
                "partner_label": row.partner_label,
                "at": instant(row.at),
                "due_at": instant(row.due_at),
            }
        )
    return out


def annotate_chain(nodes: list[dict[str, Any]], events: Events) -> None:
    """Put each node's SLA events into its ``sla`` object (API chain shape), in place."""
    for node in chain.walk(nodes):
        sla = node.setdefault("sla", {})
        if isinstance(sla, dict):
            sla["events"] = events.get(str(node["id"]), [])
