"""What an adapter's ``on_applied`` hook first asks: is this message for one of my participants?

The node runtime calls the hook inside the inbox transaction of every message applied to any
account it hosts. ``incoming`` finds the participant and the incoming delegation (with its
ticket and link) the message concerns, or None when it is not about a participant's offer.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

from sqlmodel import Session, select

from account.context import Identity
from account.delegations.models import Delegation
from account.links.models import Link
from account.tickets.models import Ticket
from adapters.hosting.participants import HostedParticipant

P = TypeVar("P", bound=HostedParticipant)


class Incoming(NamedTuple, Generic[P]):
    participant: P
    delegation: Delegation
    ticket: Ticket
    link: Link | None


def incoming(
    session: Session, model: type[P], identity: Identity, delegation_id: str
) -> Incoming[P] | None:
    """The participant ``identity`` is, and its incoming delegation ``delegation_id``."""
    participant = session.exec(select(model).where(model.account_id == identity.account_id)).first()
    if participant is None:
        return None  # the adapter's own account, or another adapter's participant
    delegation = session.exec(
        select(Delegation).where(
            Delegation.account_id == identity.account_id,
            Delegation.delegation_id == delegation_id,
        )
    ).first()
    if delegation is None or delegation.role != "in":
        return None
    ticket = session.get(Ticket, delegation.ticket_id)
    if ticket is None:
        return None
    return Incoming(participant, delegation, ticket, session.get(Link, delegation.link_id))
