"""What a page of tickets needs from other tables, loaded in two queries instead of per ticket.

The list endpoint shows each ticket with its SLA (its delegations' clocks) and its outgoing
delegations (with their unsent messages). Asked ticket by ticket that is about five queries per
ticket; ``load`` asks for the whole page at once: every delegation of the page's tickets, and
every unsent outbox row about those delegations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from account.delegations.models import Delegation
from account.messaging.models import OutboxMessage
from account.tickets.models import Ticket


@dataclass(frozen=True)
class PageFacts:
    """Per ticket id its delegations (by ``offered_at``); per delegation id its unsent rows."""

    delegations: dict[int, list[Delegation]] = field(default_factory=dict)
    unsent: dict[str, list[OutboxMessage]] = field(default_factory=dict)

    def of(self, ticket: Ticket) -> list[Delegation]:
        return self.delegations.get(ticket.id or 0, [])

    def unsent_of(self, delegation: Delegation) -> list[OutboxMessage]:
        return self.unsent.get(delegation.delegation_id, [])


def load(session: Session, account_id: str, tickets: Sequence[Ticket]) -> PageFacts:
    """The delegations and unsent messages of ``tickets`` (one page: at most a few hundred)."""
    ids = [t.id for t in tickets if t.id is not None]
    if not ids:
        return PageFacts()
    rows = session.exec(
        select(Delegation)
        .where(col(Delegation.ticket_id).in_(ids))
        .order_by(col(Delegation.offered_at), col(Delegation.id))
    ).all()
    delegations: dict[int, list[Delegation]] = {}
    for row in rows:
        delegations.setdefault(row.ticket_id, []).append(row)
    subjects = [row.delegation_id for row in rows if row.role == "out"]
    unsent: dict[str, list[OutboxMessage]] = {}
    if subjects:
        messages = session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.account_id == account_id,
                col(OutboxMessage.subject).in_(subjects),
                # not "sent" and not "superseded" (a newer state went in its place)
                col(OutboxMessage.state).in_(("pending", "failed")),
            )
            .order_by(col(OutboxMessage.id))
        ).all()
        for message in messages:
            unsent.setdefault(message.subject, []).append(message)
    return PageFacts(delegations, unsent)
