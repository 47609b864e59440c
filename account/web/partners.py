"""The partners page's hub part (admins): search the hub's directory and invite a company
through it; see the invitations that arrived for this account and accept or decline each in
one click (a decline may say why: the sender sees the reason); and see the invitations this
account sent through the hub with what became of them (pending, accepted, declined with the
partner's reason, expired), as this node last learnt it from the hub.

The hub is asked live (signed requests, ``account.hub.service``) when the page is shown, with a
short timeout: a node without a hub, or a hub that is down, shows a message in place of the
lists and everything else on the page (tokens pasted by hand) keeps working. Nothing from the
hub is stored on the node before an admin accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, select

from account.context import NodeContext
from account.deps import ContextDep, SessionDep
from account.errors import AccountError
from account.hub import service as hub_service
from account.links.models import Contract, InvitationCreate, Link
from account.web import i18n
from account.web.contracts import contract_from
from account.web.deps import CsrfForm, WebUser, field
from account.web.render import language_of, redirect
from account.web.tickets import not_found_page, validation_message

__all__ = ["contract_summary", "hub_section", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

BACK = "/ui/links"
PAGE_TIMEOUT = 5.0  # seconds: a slow hub must not hold the page long
MAX_RESULTS = 20

Translate = Callable[..., str]


def contract_summary(contract: dict[str, Any]) -> dict[str, Any]:
    """What an invitation's contract promises, for a reader: disclosure, rules, SLA targets."""
    try:
        terms = Contract.model_validate(contract)
    except ValidationError:
        return {"valid": False}
    sla = terms.sla or {}
    targets = sla.get("targets") or {}
    order = ("critical", "high", "normal", "low")
    return {
        "valid": True,
        "disclose_subcontractors": terms.disclose_subcontractors,
        "share_requester_contacts": terms.share_requester_contacts,
        "allow_subdelegation": terms.allow_subdelegation,
        "auto_accept": terms.auto_accept,
        "categories": terms.categories,
        "sla": [
            {
                "priority": p,
                "response_minutes": targets[p].get("response_minutes"),
                "resolution_minutes": targets[p].get("resolution_minutes"),
            }
            for p in order
            if p in targets
        ],
        "time_zone": (sla.get("calendar") or {}).get("time_zone") if sla else None,
    }


def _hub_problem(exc: Exception, t: Translate) -> str:
    if isinstance(exc, HTTPException):  # account.hub.service maps an unreachable hub to 503
        return t("The hub cannot be reached now; try again later.")
    if isinstance(exc, AccountError):
        return exc.detail
    raise exc


async def hub_section(
    ctx: NodeContext, session: Session, *, query: str | None, t: Translate
) -> dict[str, Any]:
    """The hub's part of the partners page: incoming invitations and directory results."""
    if not ctx.settings.hub_url:
        return {"configured": False}
    section: dict[str, Any] = {"configured": True, "query": query or "", "problem": None}
    session.commit()  # end the page's read: the hub calls below may take a while
    sent = await hub_service.sent(ctx, limit=MAX_RESULTS, hub_timeout=PAGE_TIMEOUT)
    section["sent"] = sent["items"]
    section["sent_synced"] = sent["synced"]
    try:
        incoming = await hub_service.incoming(ctx, hub_timeout=PAGE_TIMEOUT)
    except (AccountError, HTTPException) as exc:
        section["problem"] = _hub_problem(exc, t)
        return section
    for item in incoming:
        item["terms"] = contract_summary(item["contract"]) if item.get("valid") else None
    section["incoming"] = incoming
    if query is not None and query.strip():
        try:
            found = await hub_service.search(ctx, query.strip(), limit=MAX_RESULTS + 1)
        except (AccountError, HTTPException) as exc:
            section["problem"] = _hub_problem(exc, t)
            return section
        linked = set(
            session.exec(
                select(Link.peer_account).where(
                    Link.account_id == ctx.account_id, Link.direction == "downstream"
                )
            ).all()
        )
        section["results"] = [
            entry | {"linked": entry["account_id"] in linked}
            for entry in found[:MAX_RESULTS]
            if entry["account_id"] != ctx.account_id
        ]
    return section


@router.post("/links/hub/invite", response_model=None)
async def invite_through_hub(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, form: CsrfForm
) -> Response:
    """Invite a company found in the directory: the token goes to its node through the hub."""
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    to = field(form, "to")[:63]
    back = BACK + "?q=" + quote(to, safe="") if to else BACK
    try:
        days = int(field(form, "expires_in_days") or "7")
    except ValueError:
        days = 0
    try:
        invitation_in = InvitationCreate.model_validate(
            {"contract": contract_from(form), "note": field(form, "note"), "expires_in_days": days}
        )
        await hub_service.invite(
            ctx, session, to=to, invitation_in=invitation_in, note=invitation_in.note
        )
    except ValidationError as exc:
        session.rollback()
        return redirect(back, error=validation_message(exc))
    except (AccountError, HTTPException) as exc:
        session.rollback()
        return redirect(back, error=_hub_problem(exc, t))
    return redirect(BACK, ok=t("Invitation sent to {partner} through the hub.", partner=to))


@router.post("/links/incoming/{invitation_id}/accept", response_model=None)
async def accept_incoming(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    invitation_id: str,
) -> Response:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    try:
        link = await hub_service.accept_incoming(ctx, session, invitation_id[:36])
    except (AccountError, HTTPException) as exc:
        session.rollback()
        return redirect(BACK, error=_hub_problem(exc, t))
    return redirect(
        BACK, ok=t("Linked to {partner}.", partner=link.peer_label or link.peer_account)
    )


@router.post("/links/incoming/{invitation_id}/decline", response_model=None)
async def decline_incoming(
    request: Request, ctx: ContextDep, user: WebUser, form: CsrfForm, invitation_id: str
) -> Response:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    try:
        declined = await hub_service.decline_incoming(
            ctx, invitation_id[:36], reason=field(form, "reason")[:500]
        )
    except (AccountError, HTTPException) as exc:
        return redirect(BACK, error=_hub_problem(exc, t))
    partner = declined["from_label"] or declined["from"]
    return redirect(BACK, ok=t("Invitation from {partner} declined.", partner=partner))
