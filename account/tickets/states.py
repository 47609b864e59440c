"""Ticket and delegation state machines (ARCHITECTURE §4). Pure: no I/O, no framework.

Ticket status (local): ``new → open → in_progress ⇄ on_hold → resolved → closed``;
``resolved → reopened → in_progress``; an incoming offer starts ``offered`` and becomes ``open``
on accept or ``declined``; a recalled one becomes ``cancelled``.

Delegation state (the same on both ends): ``offered → accepted | declined``;
``accepted → in_progress → resolved → confirmed``; ``resolved → in_progress`` on rework;
any open state → ``recalled``.
"""

from __future__ import annotations

from typing import Final

TICKET_STATUSES: Final = (
    "new", "open", "in_progress", "on_hold", "resolved", "closed", "reopened",
    "offered", "declined", "cancelled",
)  # fmt: skip

_TICKET_MOVES: Final[dict[str, frozenset[str]]] = {
    "new": frozenset({"open", "in_progress", "on_hold", "resolved", "cancelled"}),
    "open": frozenset({"in_progress", "on_hold", "resolved", "cancelled"}),
    "in_progress": frozenset({"on_hold", "resolved", "cancelled"}),
    "on_hold": frozenset({"in_progress", "resolved", "cancelled"}),
    "resolved": frozenset({"closed", "reopened", "in_progress"}),
    "reopened": frozenset({"in_progress", "on_hold", "resolved", "cancelled"}),
    "closed": frozenset(),
    "offered": frozenset({"open", "declined", "cancelled"}),
    "declined": frozenset(),
    "cancelled": frozenset(),
}

# Statuses only a partner's message may set on a ticket that came from an upstream.
UPSTREAM_OWNED: Final = frozenset({"offered", "declined", "cancelled", "closed"})

TERMINAL_TICKET: Final = frozenset({"closed", "declined", "cancelled"})

OPEN_DELEGATION_STATES: Final = frozenset({"offered", "accepted", "in_progress", "resolved"})
TERMINAL_DELEGATION_STATES: Final = frozenset({"declined", "confirmed", "recalled"})


def can_move(current: str, target: str) -> bool:
    """Whether a ticket may go from ``current`` to ``target``."""
    return target in _TICKET_MOVES.get(current, frozenset())


def allowed_moves(current: str) -> frozenset[str]:
    return _TICKET_MOVES.get(current, frozenset())


def delegation_state_for(remote_status: str, current: str) -> str:
    """The delegation state implied by the downstream ticket's status."""
    if current in TERMINAL_DELEGATION_STATES:
        return current
    mapping = {
        "offered": "offered",
        "open": "accepted",
        "new": "accepted",
        "in_progress": "in_progress",
        "on_hold": "in_progress",
        "reopened": "in_progress",
        "resolved": "resolved",
        "closed": "confirmed",
        "declined": "declined",
        "cancelled": "recalled",
    }
    return mapping.get(remote_status, current)
