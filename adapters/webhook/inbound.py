"""What a help desk sends back: accept, decline, status, comment, attachment.

``authenticate`` checks the signature (with the participant's secret), the timestamp (stale is
refused) and that the signature was not used before (a replay is refused), remembering it in
the caller's transaction. ``apply`` performs the action on the hosted account's ticket through
the same services the node's API uses, so it travels up the chain like any answer.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from account.attachments import service as attachment_service
from account.attachments.content import normalise_content_type, sanitise_filename
from account.attachments.models import AttachmentIn
from account.config import Settings
from account.context import Identity
from account.delegations import service as delegation_service
from account.delegations.models import Delegation
from account.errors import Conflict, Invalid, NotFound
from account.tickets import states
from account.tickets.models import CommentCreate, Ticket
from adapters.webhook import mapping, participants, signing
from adapters.webhook.models import WebhookParticipant, WebhookSeen
from adapters.webhook.outbound import ticket_of
from adapters.webhook.participants import mapping_of


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(min_length=1, max_length=36)


class Accept(_Action):
    action: Literal["accept"]


class Decline(_Action):
    action: Literal["decline"]
    reason: str = Field(default="", max_length=500)


class Status(_Action):
    action: Literal["status"]
    status: str = Field(min_length=1, max_length=100)
    note: str = Field(default="", max_length=20_000)


class Comment(_Action):
    action: Literal["comment"]
    body: str = Field(min_length=1, max_length=20_000)
    author: str | None = Field(default=None, max_length=200)


class Attachment(_Action):
    action: Literal["attachment"]
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    content_base64: str = Field(min_length=1)


class Inbound(BaseModel):
    request: Annotated[
        Accept | Decline | Status | Comment | Attachment, Field(discriminator="action")
    ]


VIA = "(via help desk)"


def authenticate(
    session: Session,
    participant: WebhookParticipant,
    header: str | None,
    body: bytes,
    *,
    now: int,
    tolerance: int,
) -> None:
    """``signing.BadSignature`` unless signed now by the participant and never seen before."""
    signature = signing.verify(
        participant.secret.encode(),
        header,
        body,
        now=now,
        tolerance=tolerance,
        also=participants.previous_secrets(participant, datetime.fromtimestamp(now, UTC)),
    )
    if session.get(WebhookSeen, signature) is not None:
        raise signing.BadSignature("replayed request")
    session.add(WebhookSeen(signature=signature, account_id=participant.account_id))
    session.flush()


def apply(
    *,
    session: Session,
    identity: Identity,
    settings: Settings,
    participant: WebhookParticipant,
    request: Accept | Decline | Status | Comment | Attachment,
) -> dict[str, Any]:
    """Do what the help desk asks; return the ticket as it names it."""
    delegation = session.exec(
        select(Delegation).where(
            Delegation.account_id == participant.account_id,
            Delegation.delegation_id == request.ticket_id,
            Delegation.role == "in",
        )
    ).first()
    if delegation is None:
        raise NotFound("ticket not found")
    ticket = session.get(Ticket, delegation.ticket_id)
    if ticket is None:
        raise NotFound("ticket not found")
    if delegation.state in states.TERMINAL_DELEGATION_STATES:
        raise Conflict(f"the ticket is over ({delegation.state})")
    actor = f"{participant.name} {VIA}"[:200]
    if isinstance(request, Accept):
        delegation_service.accept(session=session, identity=identity, ticket=ticket, actor=actor)
    elif isinstance(request, Decline):
        delegation_service.decline(
            session=session,
            identity=identity,
            ticket=ticket,
            reason=request.reason or "declined by the help desk",
            actor=actor,
        )
    elif isinstance(request, Status):
        try:
            target = mapping.status_in(request.status, mapping_of(participant))
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        if ticket.status == "offered":  # working on an offer means taking it
            delegation_service.accept(
                session=session, identity=identity, ticket=ticket, actor=actor
            )
        delegation_service.change_status(
            session=session,
            identity=identity,
            ticket=ticket,
            target=target,
            note=request.note,
            actor=actor,
        )
    elif isinstance(request, Comment):
        author = f"{request.author} {VIA}"[:200] if request.author else actor
        delegation_service.comment(
            session=session,
            identity=identity,
            ticket=ticket,
            comment_in=CommentCreate(body=request.body, visibility="partner"),
            actor=author,
        )
    else:
        _attach(session, identity, settings, ticket, request, actor)
    session.flush()
    return mapping.ticket_out(ticket_of(ticket, delegation, None), mapping_of(participant))


def _attach(
    session: Session,
    identity: Identity,
    settings: Settings,
    ticket: Ticket,
    request: Attachment,
    actor: str,
) -> None:
    if len(request.content_base64) > (settings.attachment_max_bytes * 4) // 3 + 8:
        raise Invalid("attachment over the size limit")
    try:
        data = base64.b64decode(request.content_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid("content_base64 is not base64") from exc
    if not data or len(data) > settings.attachment_max_bytes:
        raise Invalid("attachment is empty or over the size limit")
    sha = attachment_service.blob_store(settings).put(data)
    attachment_service.create(
        session=session,
        identity=identity,
        settings=settings,
        ticket=ticket,
        attachment_in=AttachmentIn(
            filename=sanitise_filename(request.filename),
            content_type=normalise_content_type(request.content_type),
            size=len(data),
            sha256=sha,
            visibility="partner",
        ),
        actor=actor,
    )
