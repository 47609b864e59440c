"""``/api/v1/participants``: the adapter's admin redeems invitations for e-mail participants."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from sqlmodel import col, select

from account.deps import AdminUser, ContextDep, SessionDep, commit
from adapters.email import participants
from adapters.email.models import MailParticipant
from adapters.email.participants import ParticipantCreate
from adapters.email.service import EmailAdapter

router = APIRouter(prefix="/api/v1/participants", tags=["e-mail participants"])


def _adapter(request: Request) -> EmailAdapter:
    adapter: EmailAdapter = request.app.state.email
    return adapter


@router.post("", status_code=status.HTTP_201_CREATED)
def create_participant(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    participant_in: ParticipantCreate,
) -> dict[str, Any]:
    """Create a hosted e-mail participant and accept the upstream's invitation as it."""
    adapter = _adapter(request)
    participant, identity = participants.create(
        session=session,
        settings=ctx.settings,
        adapter=ctx.identity,
        mailer=adapter.mailer,
        participant_in=participant_in,
    )
    commit(session, ctx)
    adapter.host(identity)
    return participants.to_public(participant)


@router.get("")
def list_participants(ctx: ContextDep, session: SessionDep, _admin: AdminUser) -> dict[str, Any]:
    rows = session.exec(
        select(MailParticipant)
        .where(MailParticipant.adapter_account == ctx.account_id)
        .order_by(col(MailParticipant.id))
    ).all()
    return {"items": [participants.to_public(row) for row in rows]}
