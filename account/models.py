"""Every table of the node, imported in one place so ``create_all`` sees them all."""

from account.attachments.models import Attachment
from account.delegations.models import Delegation
from account.hub.models import HubSentInvitation
from account.links.models import Invitation, Link
from account.messaging.models import InboxMessage, OutboxMessage, RejectedInbound
from account.sla.models import SlaEventRecord
from account.tickets import search  # noqa: F401  (the ticket search index: DDL hooks)
from account.tickets.models import Comment, Ticket, TicketEvent
from account.tmf.models import TmfCursor, TmfHub, TmfNotification, TmfTicketInfo
from account.users.models import ApiKey, User

__all__ = [
    "ApiKey",
    "Attachment",
    "Comment",
    "Delegation",
    "HubSentInvitation",
    "InboxMessage",
    "Invitation",
    "Link",
    "OutboxMessage",
    "RejectedInbound",
    "SlaEventRecord",
    "Ticket",
    "TicketEvent",
    "TmfCursor",
    "TmfHub",
    "TmfNotification",
    "TmfTicketInfo",
    "User",
]
