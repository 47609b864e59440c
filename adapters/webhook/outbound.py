"""Events for hosted help desks, queued in the transaction of what they tell about.

``on_applied`` is the node's ``on_applied`` hook: it runs inside the inbox transaction of every
message applied to a hosted account and turns offers, updates, comments, recalls, reworks,
confirmations, ratings and attachments into ``WebhookOutbox`` rows (with the ticket as the
participant's mapping names it), so an event is queued exactly when what it tells about happened.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlmodel import Session

from account.context import Identity
from account.delegations.models import Delegation
from account.links.models import Link
from account.tickets.models import Ticket
from adapters.hosting import hooks
from adapters.webhook import mapping
from adapters.webhook.models import WebhookOutbox, WebhookParticipant
from adapters.webhook.participants import mapping_of
from exchange.clock import instant, utcnow
from exchange.envelopes import Opened
from schemas import messages as m

EVENTS: Final = {
    "delegation.offer": "offer",
    "ticket.update": "update",
    "ticket.comment": "comment",
    "delegation.recall": "recall",
    "resolution.rework": "rework",
    "resolution.confirm": "confirm",
    "rating": "rating",
    "ticket.attachment": "attachment",
}


def ticket_of(ticket: Ticket, delegation: Delegation, link: Link | None) -> dict[str, Any]:
    """The ticket in Tix names; ``ticket_id`` is what the help desk answers with."""
    return {
        "ticket_id": delegation.delegation_id,
        "number": ticket.number,
        "title": ticket.title,
        "description": ticket.description,
        "priority": ticket.priority,
        "category": ticket.category,
        "status": ticket.status,
        "service_object": ticket.service_object,
        "requester": ticket.requester,
        "created_at": instant(ticket.created_at),
        "upstream": {
            "account": ticket.upstream_account,
            "name": (link.peer_label if link else None) or ticket.upstream_account,
            "ref": ticket.upstream_ref,
        },
    }


def queue(
    session: Session,
    participant: WebhookParticipant,
    event: str,
    ticket: dict[str, Any],
    extra: dict[str, Any],
) -> WebhookOutbox:
    event_id = str(uuid.uuid4())
    row = WebhookOutbox(
        account_id=participant.account_id,
        event_id=event_id,
        event=event,
        payload={
            "event_id": event_id,
            "event": event,
            "occurred_at": instant(utcnow()),
            "participant": participant.account_id,
            "ticket": mapping.ticket_out(ticket, mapping_of(participant)),
        }
        | extra,
    )
    session.add(row)
    session.flush()
    return row


def on_applied(session: Session, identity: Identity, opened: Opened) -> None:
    """Queue the event an applied message means for a hosted help desk (if any)."""
    event = EVENTS.get(opened.envelope.type)
    if event is None:
        return
    found = hooks.incoming(session, WebhookParticipant, identity, opened.envelope.subject)
    if found is None:
        return
    participant, delegation, ticket, link = found
    body = opened.body
    extra: dict[str, Any] = {}
    if isinstance(body, m.DelegationOffer):
        extra["note"] = body.note
    elif isinstance(body, m.TicketUpdate):
        extra["changes"] = body.model_dump(exclude_none=True)
    elif isinstance(body, m.TicketComment):  # internal ones never cross a link
        extra["comment"] = {
            "id": body.comment_id,
            "author": body.author,
            "body": body.body,
            "created_at": body.created_at,
        }
    elif isinstance(body, m.DelegationRecall | m.ResolutionRework):
        extra["reason"] = body.reason
    elif isinstance(body, m.ResolutionConfirm):
        extra["note"] = body.note
    elif isinstance(body, m.Rating):
        extra["rating"] = {"score": body.score, "comment": body.comment}
    elif isinstance(body, m.TicketAttachment):
        # Small files travel inline on the wire and so in the event; larger ones only by
        # their metadata (the help desk asks the upstream for them).
        extra["attachment"] = {
            "id": body.attachment_id,
            "filename": body.filename,
            "content_type": body.content_type,
            "size": body.size,
            "sha256": body.sha256,
            "uploaded_by": body.uploaded_by,
            "content_base64": body.content_b64,
        }
    queue(session, participant, event, ticket_of(ticket, delegation, link), extra)
