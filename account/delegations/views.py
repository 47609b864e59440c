"""Delegation endpoints: delegate a ticket, and recall / confirm / rework a delegation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from account.delegations import service as delegation_service
from account.delegations.models import DelegationCreate
from account.deps import ContextDep, DispatcherUser, SessionDep, commit
from account.tickets import service as ticket_service
from account.tickets.models import Reason

router = APIRouter(prefix="/api/v1", tags=["delegations"])


@router.post("/tickets/{number}/delegations", status_code=status.HTTP_201_CREATED)
def delegate(
    ctx: ContextDep,
    session: SessionDep,
    user: DispatcherUser,
    number: str,
    delegation_in: DelegationCreate,
) -> dict[str, Any]:
    ticket = ticket_service.get_visible(
        session=session, account_id=ctx.account_id, user=user, number=number
    )
    delegation = delegation_service.delegate(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        delegation_in=delegation_in,
        actor=user.username,
        settings=ctx.settings,
    )
    commit(session, ctx)
    return delegation_service.to_public(session=session, delegation=delegation)


@router.get("/delegations/{delegation_id}")
def get_delegation(
    ctx: ContextDep, session: SessionDep, user: DispatcherUser, delegation_id: str
) -> dict[str, Any]:
    delegation = delegation_service.get(
        session=session, account_id=ctx.account_id, delegation_id=delegation_id
    )
    return delegation_service.to_public(session=session, delegation=delegation)


@router.post("/delegations/{delegation_id}/{action}")
def act(
    ctx: ContextDep,
    session: SessionDep,
    user: DispatcherUser,
    delegation_id: str,
    action: str,
    reason: Reason | None = None,
) -> dict[str, Any]:
    reason = reason or Reason()
    delegation = delegation_service.get(
        session=session, account_id=ctx.account_id, delegation_id=delegation_id
    )
    operations = {
        "recall": delegation_service.recall,
        "rework": delegation_service.rework,
    }
    if action == "confirm":
        delegation_service.confirm(
            session=session,
            identity=ctx.identity,
            delegation=delegation,
            note=reason.reason,
            actor=user.username,
        )
    elif action in operations:
        operations[action](
            session=session,
            identity=ctx.identity,
            delegation=delegation,
            reason=reason.reason,
            actor=user.username,
        )
    else:
        from account.errors import NotFound

        raise NotFound(f"no action {action}")
    commit(session, ctx)
    return delegation_service.to_public(session=session, delegation=delegation)
