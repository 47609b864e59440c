"""The Tix wire protocol, version 1: the envelope and the body of every message type.

This package imports nothing of ours. Models are frozen and refuse unknown fields, so what a
node signs is exactly what the schema describes.
"""

from schemas.envelope import ENVELOPE_VERSION, MESSAGE_TYPES, Envelope, body_model
from schemas.messages import (
    ChainNode,
    DelegationAccept,
    DelegationDecline,
    DelegationOffer,
    DelegationRecall,
    LinkAccept,
    LinkRekey,
    LinkSuspend,
    Rating,
    ResolutionConfirm,
    ResolutionRework,
    SlaEvent,
    TicketAttachment,
    TicketComment,
    TicketSnapshot,
    TicketStatus,
    TicketUpdate,
)

__all__ = [
    "ENVELOPE_VERSION",
    "MESSAGE_TYPES",
    "ChainNode",
    "DelegationAccept",
    "DelegationDecline",
    "DelegationOffer",
    "DelegationRecall",
    "Envelope",
    "LinkAccept",
    "LinkRekey",
    "LinkSuspend",
    "Rating",
    "ResolutionConfirm",
    "ResolutionRework",
    "SlaEvent",
    "TicketAttachment",
    "TicketComment",
    "TicketSnapshot",
    "TicketStatus",
    "TicketUpdate",
    "body_model",
]
