"""SLA bookkeeping on delegations: the policy, the history the clocks read, deadlines and states.

Each delegation keeps the SLA policy of its link's contract as it was when the offer was made
(both ends take it from their copy of the same contract), the holds and reworks its clocks
read, and what the last evaluation found: the due instants, the worst clock state and the next
instant the state can change, which the scheduler waits for (``sla_next_check_at``, indexed).
``refresh`` is cheap and idempotent; the delegation service calls it whenever a delegation or
its ticket changes, so deadlines are always those of the current history.

A ticket's ``sla_state`` is the worst of its own clocks (its incoming delegation), its outgoing
delegations' and the states rolled up from below in their subtrees, so a list filtered by
``sla=breached`` at the general contractor shows a breach anywhere in the chain.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlmodel import Session, col, select

from account.delegations import chain
from account.delegations.models import Delegation
from account.links.models import Link
from account.sla.clocks import (
    Clock,
    Hold,
    PolicyError,
    Rework,
    SlaClocks,
    SlaHistory,
    SlaPolicy,
    evaluate,
)
from account.sla.models import SlaEventRecord
from account.tickets.models import Ticket
from account.tickets.states import TERMINAL_DELEGATION_STATES
from exchange.clock import aware, instant, parse_instant, utcnow

__all__ = [
    "RANK",
    "clocks_of",
    "cycle_of",
    "observe_status",
    "public_clock",
    "record_rework",
    "refresh",
    "refresh_ticket",
    "start",
    "ticket_sla",
    "worst",
]

# How bad each state is: a ticket shows the worst one of everything it is made of.
RANK: Final = {"none": 0, "met": 1, "ok": 2, "at_risk": 3, "breached": 4}
VOID_STATES: Final = frozenset({"declined", "recalled"})  # the clocks no longer count


def worst(states: Iterable[str]) -> str:
    """The worst of some SLA states (``none`` when there are none)."""
    return max(states, key=lambda s: RANK.get(s, 0), default="none")


def policy_of(delegation: Delegation) -> SlaPolicy | None:
    """The delegation's SLA policy, or None when its contract set none (or an unusable one)."""
    if not delegation.sla_policy:
        return None
    return _parse_policy(json.dumps(delegation.sla_policy, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _parse_policy(text: str) -> SlaPolicy | None:
    """Policies are few and immutable: parse each one once (a calendar is costly to build)."""
    try:
        return SlaPolicy.from_dict(json.loads(text))
    except PolicyError:
        return None


def start(*, delegation: Delegation, link: Link, offered_at: datetime | None = None) -> None:
    """Take the link contract's SLA policy for a new delegation (and when it was offered)."""
    raw = (link.contract or {}).get("sla") or None
    delegation.sla_policy = SlaPolicy.from_dict(raw).to_dict() if raw else None
    if offered_at is not None:
        delegation.offered_at = offered_at


def observe_status(*, delegation: Delegation, status: str, at: datetime) -> None:
    """Open a hold when the performer's ticket goes ``on_hold``, close it when it leaves."""
    holds = [list(h) for h in delegation.sla_holds or []]
    open_hold = bool(holds) and holds[-1][1] is None
    if status == "on_hold" and not open_hold:
        holds.append([instant(at), None])
    elif status != "on_hold" and open_hold:
        holds[-1][1] = instant(max(aware(at), parse_instant(str(holds[-1][0]))))
    else:
        return
    delegation.sla_holds = holds


def record_rework(*, delegation: Delegation, resolved_at: datetime | None, at: datetime) -> None:
    """A resolution was sent back: the resolution clock restarts or continues by policy."""
    if resolved_at is None:
        return
    reworks = [list(r) for r in delegation.sla_reworks or []]
    reworks.append([instant(resolved_at), instant(max(aware(at), aware(resolved_at)))])
    delegation.sla_reworks = reworks


def history_of(delegation: Delegation) -> SlaHistory:
    holds = tuple(
        Hold(parse_instant(str(start)), parse_instant(end) if end else None)
        for start, end in delegation.sla_holds or []
    )
    reworks = tuple(
        Rework(parse_instant(resolved), parse_instant(back))
        for resolved, back in delegation.sla_reworks or []
    )
    return SlaHistory(
        offered_at=delegation.offered_at,
        accepted_at=delegation.accepted_at,
        holds=holds,
        resolved_at=delegation.resolved_at,
        reworks=reworks,
    )


def clocks_of(
    delegation: Delegation, priority: str, now: datetime | None = None
) -> SlaClocks | None:
    """Both clocks of a delegation at ``now``; None when it has no SLA or no longer counts."""
    policy = policy_of(delegation)
    if policy is None or delegation.state in VOID_STATES:
        return None
    return evaluate(
        policy=policy,
        priority=priority,  # type: ignore[arg-type]  # a ticket's priority is validated on entry
        history=history_of(delegation),
        now=now or utcnow(),
    )


def cycle_of(delegation: Delegation, clock: str) -> int:
    """Which run of a clock this is: a rework that restarts the resolution clock starts anew."""
    policy = policy_of(delegation)
    if clock == "resolution" and policy is not None and policy.rework == "restart":
        return len(delegation.sla_reworks or [])
    return 0


def _clock_list(clocks: SlaClocks | None) -> list[Clock]:
    if clocks is None:
        return []
    return [c for c in (clocks.response, clocks.resolution) if c is not None]


def _unrecorded(session: Session, delegation: Delegation, clocks: SlaClocks | None) -> bool:
    """Whether a clock has reached a threshold no event has been recorded for yet."""
    wanted = {
        f"{delegation.delegation_id}:{c.name}:{kind}:{cycle_of(delegation, c.name)}"
        for c in _clock_list(clocks)
        for kind in c.reached
    }
    if not wanted:
        return False
    have = set(
        session.exec(
            select(SlaEventRecord.dedupe_key).where(
                SlaEventRecord.account_id == delegation.account_id,
                col(SlaEventRecord.dedupe_key).in_(list(wanted)),
            )
        ).all()
    )
    return bool(wanted - have)


def refresh(
    *, session: Session, delegation: Delegation, priority: str, now: datetime | None = None
) -> SlaClocks | None:
    """Evaluate a delegation's clocks and store deadlines, state and next check time."""
    now = now or utcnow()
    clocks = clocks_of(delegation, priority, now)
    listed = _clock_list(clocks)
    delegation.response_due_at = clocks.response.due_at if clocks and clocks.response else None
    delegation.resolve_due_at = clocks.resolution.due_at if clocks and clocks.resolution else None
    delegation.sla_state = worst(c.state for c in listed) if listed else "none"
    next_check = None
    if clocks is not None:
        next_check = clocks.next_change_at
        # Upstream ends emit events; a threshold already passed wakes the scheduler now.
        if delegation.role == "out" and _unrecorded(session, delegation, clocks):
            next_check = now
    if delegation.state in TERMINAL_DELEGATION_STATES and next_check != now:
        next_check = None
    delegation.sla_next_check_at = next_check
    session.add(delegation)
    return clocks


def refresh_ticket(
    *,
    session: Session,
    ticket: Ticket,
    now: datetime | None = None,
    rows: Sequence[Delegation] | None = None,
) -> None:
    """Refresh every delegation of a ticket and the ticket's own worst state.

    ``rows``: the ticket's delegations when the caller already loaded them (a roll-up).
    """
    now = now or utcnow()
    if rows is None:
        rows = session.exec(select(Delegation).where(Delegation.ticket_id == ticket.id)).all()
    states: list[str] = []
    for row in rows:
        refresh(session=session, delegation=row, priority=ticket.priority, now=now)
        states.append(row.sla_state)
        if row.role == "out" and row.state not in VOID_STATES:
            states.extend(
                node.get("sla_state", "none") for node in chain.walk(list(row.subtree or []))
            )
    state = worst(states)
    if state != ticket.sla_state:
        ticket.sla_state = state
        session.add(ticket)


def public_clock(clock: Clock | None) -> dict[str, Any] | None:
    """A clock in the API's shape."""
    if clock is None:
        return None
    return {
        "state": clock.state,
        "due_at": instant(clock.due_at) if clock.due_at else None,
        "warn_at": instant(clock.warn_at) if clock.warn_at else None,
        "target_minutes": clock.target_minutes,
        "elapsed_minutes": round(clock.elapsed_minutes, 2),
        "paused": clock.paused,
    }


def squeezed(incoming: Delegation | None, outgoing: Iterable[Delegation]) -> list[str]:
    """Outgoing delegations (ids) whose resolution deadline falls after our own."""
    if incoming is None or incoming.resolve_due_at is None:
        return []
    ours = aware(incoming.resolve_due_at)
    return [
        d.delegation_id
        for d in outgoing
        if d.state not in VOID_STATES
        and d.resolve_due_at is not None
        and aware(d.resolve_due_at) > ours
    ]


def ticket_sla(
    *,
    session: Session,
    ticket: Ticket,
    now: datetime | None = None,
    rows: Sequence[Delegation] | None = None,
) -> dict[str, Any]:
    """The ``sla`` object of a ticket in the API: its own clocks, its delegations', squeeze.

    ``rows``: the ticket's delegations by ``offered_at`` when the caller already loaded them.
    """
    now = now or utcnow()
    if rows is None:
        rows = session.exec(
            select(Delegation)
            .where(Delegation.ticket_id == ticket.id)
            .order_by(col(Delegation.offered_at), col(Delegation.id))
        ).all()
    incoming = next((r for r in rows if r.role == "in"), None)
    outgoing = [r for r in rows if r.role == "out"]
    own = clocks_of(incoming, ticket.priority, now) if incoming is not None else None
    delegations = []
    for d in outgoing:
        clocks = clocks_of(d, ticket.priority, now)
        delegations.append(
            {
                "id": d.delegation_id,
                "partner": d.peer_account,
                "state": worst(c.state for c in _clock_list(clocks)) if clocks else "none",
                "response": public_clock(clocks.response if clocks else None),
                "resolution": public_clock(clocks.resolution if clocks else None),
            }
        )
    return {
        "state": ticket.sla_state,
        "response": public_clock(own.response if own else None),
        "resolution": public_clock(own.resolution if own else None),
        "squeeze": bool(squeezed(incoming, outgoing)),
        "delegations": delegations,
    }
