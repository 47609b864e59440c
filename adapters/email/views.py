"""``/api/v1/participants``: the adapter's admin redeems invitations for e-mail participants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from sqlmodel import col, select

from account.deps import AdminUser, ContextDep, SessionDep, commit
from adapters.email import participants
from adapters.email.models import MailOutbox, MailParticipant
from adapters.email.participants import ParticipantCreate
from adapters.email.service import EmailAdapter
from adapters.hosting.views import adapter_of, host_new, listing
from exchange.clock import instant, utcnow

router = APIRouter(prefix="/api/v1/participants", tags=["e-mail participants"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_participant(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    participant_in: ParticipantCreate,
) -> dict[str, Any]:
    """Create a hosted e-mail participant and accept the upstream's invitation as it."""
    created = participants.create(
        session=session,
        settings=ctx.settings,
        adapter=ctx.identity,
        mailer=adapter_of(request, EmailAdapter).mailer,
        participant_in=participant_in,
    )
    return participants.to_public(host_new(request, session, ctx, created))


@router.get("")
def list_participants(ctx: ContextDep, session: SessionDep, _admin: AdminUser) -> dict[str, Any]:
    return listing(session, ctx, MailParticipant, participants.to_public)


@router.get("/mail")
def list_mail(
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    state: Annotated[str, Query(pattern=r"^(pending|sent|failed|bounced)$")] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Mails of the queue in one state, oldest first, with their tries and last error."""
    rows = session.exec(
        select(MailOutbox)
        .where(MailOutbox.state == state)
        .order_by(col(MailOutbox.id))
        .limit(limit)
    ).all()
    return {
        "items": [
            {
                "message_id": row.message_id,
                "account": row.account_id,
                "kind": row.kind,
                "to": row.recipients,
                "state": row.state,
                "tries": row.tries,
                "last_error": row.last_error,
                "created_at": instant(row.created_at),
                "sent_at": instant(row.sent_at) if row.sent_at else None,
            }
            for row in rows
        ]
    }


@router.post("/mail/retry")
def retry_mail(
    request: Request, ctx: ContextDep, session: SessionDep, _admin: AdminUser
) -> dict[str, int]:
    """Put mails the SMTP server refused (``failed``) back in the queue, e.g. after a fix."""
    rows = session.exec(select(MailOutbox).where(MailOutbox.state == "failed")).all()
    for row in rows:
        row.state = "pending"
        row.next_try_at = utcnow()
        session.add(row)
    commit(session, ctx)
    adapter_of(request, EmailAdapter).sender.wake()
    return {"retried": len(rows)}
