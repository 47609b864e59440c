"""The signed envelope every Tix message travels in (ARCHITECTURE §5).

``sig`` is Ed25519 over the RFC 8785 canonical JSON of the envelope without ``sig``; signing
and verification live in ``exchange.signing``. This module only describes the shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field

from schemas import messages as m
from schemas.common import AccountId, Instant, Kid, Uuid, WireModel

ENVELOPE_VERSION: Final = 1

MessageType = Literal[
    "link.accept",
    "link.rekey",
    "link.suspend",
    "delegation.offer",
    "delegation.accept",
    "delegation.decline",
    "delegation.recall",
    "ticket.update",
    "ticket.status",
    "ticket.comment",
    "ticket.attachment",
    "sla.event",
    "resolution.confirm",
    "resolution.rework",
    "rating",
]

BODY_MODELS: Final[dict[str, type[WireModel]]] = {
    "link.accept": m.LinkAccept,
    "link.rekey": m.LinkRekey,
    "link.suspend": m.LinkSuspend,
    "delegation.offer": m.DelegationOffer,
    "delegation.accept": m.DelegationAccept,
    "delegation.decline": m.DelegationDecline,
    "delegation.recall": m.DelegationRecall,
    "ticket.update": m.TicketUpdate,
    "ticket.status": m.TicketStatus,
    "ticket.comment": m.TicketComment,
    "ticket.attachment": m.TicketAttachment,
    "sla.event": m.SlaEvent,
    "resolution.confirm": m.ResolutionConfirm,
    "resolution.rework": m.ResolutionRework,
    "rating": m.Rating,
}
MESSAGE_TYPES: Final = tuple(BODY_MODELS)


class Envelope(WireModel):
    """One signed message between two accounts."""

    v: Literal[1]
    id: Uuid
    type: MessageType
    from_: Annotated[AccountId, Field(alias="from")]
    to: AccountId
    link: Uuid
    subject: Uuid
    seq: Annotated[int, Field(ge=1, le=2**53 - 1)]
    sent_at: Instant
    body: dict[str, Any]
    kid: Kid
    sig: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$")]

    def wire_dict(self) -> dict[str, Any]:
        """The envelope as it travels: ``from`` spelled as on the wire."""
        return self.model_dump(by_alias=True)


def body_model(message_type: str) -> type[WireModel]:
    """The body model of a message type; KeyError for a type this version does not know."""
    return BODY_MODELS[message_type]
