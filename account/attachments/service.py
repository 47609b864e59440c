"""Attachments on tickets: local uploads, what partners send, and the fan-out across links.

An attachment travels like a comment: to the ticket's upstream and to every open outgoing
delegation over an active link, except the delegation it came from, and never when it is
``internal``. Content up to ``Settings.attachment_inline_bytes`` rides inside the
``ticket.attachment`` message; larger content is announced by size and SHA-256 and the receiver
fetches it from the sender's API (``account.attachments.federation``). Attachments are
idempotent by ``attachment_id`` per ticket, so a message that arrives twice changes nothing.
Callers own the transaction; blob writes happen at once and are harmless if it rolls back
(content-addressed, reused by the next upload of the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

from sqlmodel import Session, col, select

from account.attachments.blobs import BlobStore, is_digest
from account.attachments.content import normalise_content_type, sanitise_filename
from account.attachments.models import Attachment, AttachmentIn
from account.config import Settings
from account.context import Identity
from account.delegations import chain
from account.delegations.models import Delegation
from account.errors import Invalid, NotFound
from account.links.models import Contract, Link
from account.messaging import outbox
from account.tickets import service as ticket_service
from account.tickets import states
from account.tickets.models import Ticket
from account.users.models import User
from exchange.clock import instant, parse_instant, utcnow
from exchange.errors import RejectedMessage
from schemas import messages as m

__all__ = [
    "apply_attachment",
    "blob_store",
    "create",
    "get_visible",
    "list_visible",
    "send",
    "send_to_delegation",
    "to_message",
]


def blob_store(settings: Settings) -> BlobStore:
    """The node's attachment content: ``<data_dir>/blobs``."""
    return BlobStore(settings.data_dir / "blobs")


def _find(session: Session, ticket_id: int, attachment_id: str) -> Attachment | None:
    return session.exec(
        select(Attachment).where(
            Attachment.ticket_id == ticket_id, Attachment.attachment_id == attachment_id
        )
    ).first()


def list_visible(*, session: Session, ticket: Ticket, user: User) -> list[Attachment]:
    """The ticket's attachments this user may see (contacts: ``public`` ones only)."""
    statement = select(Attachment).where(Attachment.ticket_id == ticket.id)
    if user.role == "contact":
        statement = statement.where(Attachment.visibility == "public")
    return list(
        session.exec(statement.order_by(col(Attachment.created_at), col(Attachment.id))).all()
    )


def get_visible(*, session: Session, ticket: Ticket, user: User, attachment_id: str) -> Attachment:
    """One attachment of the ticket if the user may see it, else ``NotFound``."""
    assert ticket.id is not None
    row = _find(session, ticket.id, attachment_id)
    if row is None or (user.role == "contact" and row.visibility != "public"):
        raise NotFound("attachment not found")
    return row


def create(
    *,
    session: Session,
    identity: Identity,
    settings: Settings,
    ticket: Ticket,
    attachment_in: AttachmentIn,
    actor: str,
) -> Attachment:
    """Record a local upload (its content already in the blob store) and send it on."""
    assert ticket.id is not None
    if attachment_in.size > settings.attachment_max_bytes:
        raise Invalid("attachment over the size limit")
    if not is_digest(attachment_in.sha256) or not blob_store(settings).has(attachment_in.sha256):
        raise Invalid("attachment content is not stored")
    row = Attachment(
        attachment_id=str(uuid.uuid4()),
        ticket_id=ticket.id,
        filename=sanitise_filename(attachment_in.filename),
        content_type=normalise_content_type(attachment_in.content_type),
        size=attachment_in.size,
        sha256=attachment_in.sha256,
        visibility=attachment_in.visibility,
        uploaded_by=actor[:500],
        stored=True,
    )
    session.add(row)
    session.flush()
    _record(session, ticket, row, actor=row.uploaded_by)
    send(session=session, identity=identity, settings=settings, ticket=ticket, attachment=row)
    return row


def _record(
    session: Session,
    ticket: Ticket,
    row: Attachment,
    *,
    actor: str,
    source_account: str | None = None,
    level: int | None = None,
) -> None:
    ticket_service.record(
        session=session,
        ticket=ticket,
        kind="attachment",
        actor=actor,
        source_account=source_account,
        level=level,
        detail={
            "attachment_id": row.attachment_id,
            "filename": row.filename,
            "size": row.size,
            "visibility": row.visibility,
        },
    )


def to_message(*, settings: Settings, attachment: Attachment) -> m.TicketAttachment:
    """The wire form: content inline when it is here and within the inline limit."""
    content_b64 = None
    store = blob_store(settings)
    if (
        attachment.stored
        and attachment.size <= settings.attachment_inline_bytes
        and store.has(attachment.sha256)
    ):
        content_b64 = base64.b64encode(store.read(attachment.sha256)).decode("ascii")
    return m.TicketAttachment(
        attachment_id=attachment.attachment_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        content_b64=content_b64,
        visibility="public" if attachment.visibility == "public" else "partner",
        uploaded_by=attachment.uploaded_by or None,
        created_at=instant(attachment.created_at),
        origin_level=attachment.origin_level,
    )


def send(
    *,
    session: Session,
    identity: Identity,
    settings: Settings,
    ticket: Ticket,
    attachment: Attachment,
    exclude_delegation_id: str | None = None,
) -> int:
    """Send the attachment over every open delegation of the ticket; return how many.

    ``exclude_delegation_id`` (a ``delegation_id``) is the one it came over. Internal
    attachments never leave; suspended links and closed delegations are skipped.
    """
    if attachment.visibility == "internal":
        return 0
    targets = session.exec(
        select(Delegation)
        .where(
            Delegation.ticket_id == ticket.id,
            col(Delegation.state).in_(list(states.OPEN_DELEGATION_STATES)),
        )
        .order_by(col(Delegation.id))
    ).all()
    body = to_message(settings=settings, attachment=attachment)
    if attachment.source_account is None:  # ours: say which company it comes from
        who = f"{attachment.uploaded_by or 'unknown'} ({identity.label})"[:500]
        body = body.model_copy(update={"uploaded_by": who, "origin_level": ticket.depth})
    from_below = (
        attachment.source_account is not None
        and attachment.source_account != ticket.upstream_account
    )
    sent = 0
    for delegation in targets:
        if delegation.delegation_id == exclude_delegation_id:
            continue
        out = body
        if delegation.role == "in" and from_below:
            link = session.get(Link, delegation.link_id)
            policy = Contract.model_validate(link.contract if link else {}).disclose_subcontractors
            origin = body.origin_level if body.origin_level is not None else ticket.depth + 1
            shown = chain.author_upstream(
                policy, body.uploaded_by, origin_level=origin, forwarder=identity.label[:500]
            )
            out = body.model_copy(update={"uploaded_by": shown})
        if _enqueue(session, identity, delegation, out):
            sent += 1
    return sent


def send_to_delegation(
    *, session: Session, identity: Identity, settings: Settings, delegation: Delegation
) -> int:
    """Send the ticket's existing shareable attachments over a new delegation (after its offer)."""
    rows = session.exec(
        select(Attachment)
        .where(Attachment.ticket_id == delegation.ticket_id, Attachment.visibility != "internal")
        .order_by(col(Attachment.created_at), col(Attachment.id))
    ).all()
    return sum(
        _enqueue(session, identity, delegation, to_message(settings=settings, attachment=row))
        for row in rows
    )


def _enqueue(
    session: Session, identity: Identity, delegation: Delegation, body: m.TicketAttachment
) -> bool:
    link = session.get(Link, delegation.link_id)
    if link is None or link.state != "active":
        return False  # nothing crosses a suspended link
    outbox.enqueue_next(
        session=session,
        identity=identity,
        counter=Delegation,
        row_id=delegation.id,
        to=delegation.peer_account,
        link_id=delegation.link_id,
        message_type="ticket.attachment",
        subject=delegation.delegation_id,
        body=body,
    )
    delegation.updated_at = utcnow()
    session.add(delegation)
    return True


def apply_attachment(
    *,
    session: Session,
    identity: Identity,
    delegation: Delegation,
    body: m.TicketAttachment,
    settings: Settings,
) -> None:
    """Record an attachment a partner sent over ``delegation`` and pass it on (checks passed).

    Inline content must match the announced size and digest; without content the attachment
    is recorded as not stored and ``federation.fetch_pending`` fetches it later.
    """
    ticket = ticket_service.get_by_id(session=session, ticket_id=delegation.ticket_id)
    assert ticket.id is not None
    if _find(session, ticket.id, body.attachment_id) is not None:
        return  # the same attachment again (it may come back around a chain)
    if body.size > settings.attachment_max_bytes:
        raise RejectedMessage("too_large", f"attachment of {body.size} bytes is over the limit")
    store = blob_store(settings)
    stored = False
    if body.content_b64 is not None:
        try:
            data = base64.b64decode(body.content_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RejectedMessage("not_applicable", "attachment content is not base64") from exc
        if len(data) != body.size or hashlib.sha256(data).hexdigest() != body.sha256:
            raise RejectedMessage(
                "not_applicable", "attachment content does not match its size and digest"
            )
        store.put(data)
        stored = True
    elif store.has(body.sha256):
        if store.path(body.sha256).stat().st_size != body.size:
            raise RejectedMessage("not_applicable", "attachment size does not match its digest")
        stored = True  # the same content is here already
    peer = delegation.peer_account
    row = Attachment(
        attachment_id=body.attachment_id,
        ticket_id=ticket.id,
        filename=sanitise_filename(body.filename),
        content_type=normalise_content_type(body.content_type),
        size=body.size,
        sha256=body.sha256,
        visibility=body.visibility,
        uploaded_by=(body.uploaded_by or peer)[:500],
        origin_level=body.origin_level,
        source_account=peer,
        source_delegation_id=delegation.id,
        stored=stored,
        next_fetch_at=None if stored else utcnow(),
        created_at=parse_instant(body.created_at) if body.created_at else utcnow(),
    )
    session.add(row)
    session.flush()
    level = ticket.depth + 1 if delegation.role == "out" else ticket.depth - 1
    _record(session, ticket, row, actor=row.uploaded_by, source_account=peer, level=level)
    send(
        session=session,
        identity=identity,
        settings=settings,
        ticket=ticket,
        attachment=row,
        exclude_delegation_id=delegation.delegation_id,
    )
