"""The partners page (admins): invitations, accepting one, contracts, suspend and resume; the
hub's directory and incoming invitations are in ``account.web.partners``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from account.context import NodeContext
from account.delegations import service as delegation_service
from account.deps import ContextDep, SessionDep, commit
from account.errors import AccountError, Invalid, NotFound
from account.links import service as link_service
from account.links.models import InvitationCreate, Link, LinkPatch
from account.users.models import User
from account.web import i18n, partners
from account.web.contracts import contract_from, contract_view
from account.web.deps import CsrfForm, WebUser, field
from account.web.render import language_of, page, redirect
from account.web.tickets import Missing, act, not_found_page, validation_message

router = APIRouter(prefix="/ui", include_in_schema=False)


def _page(
    request: Request,
    ctx: NodeContext,
    session: Session,
    user: User,
    *,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    links: list[Link] = link_service.list_links(session=session, account_id=ctx.account_id)
    rows = [
        {
            "id": link.id,
            "peer_account": link.peer_account,
            "peer_label": link.peer_label,
            "direction": link.direction,
            "state": link.state,
            "suspended_by": link.suspended_by,
            "peer_kid": link.peer_kid,
            "created_at": link.created_at,
            "contract_view": contract_view(link.contract),
        }
        for link in links
    ]
    return page(
        request,
        "links.html",
        ctx=ctx,
        user=user,
        status_code=status_code,
        links=rows,
        default_contract=contract_view({}),
        **values,
    )


@router.get("/links")
async def links_page(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    q: str | None = None,
) -> HTMLResponse:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    # Cut, not refused: a page answers with a page, never a JSON 422.
    hub = await partners.hub_section(ctx, session, query=q[:100] if q else q, t=t)
    return _page(request, ctx, session, user, hub=hub)


@router.post("/links/invite", response_model=None)
def invite(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, form: CsrfForm
) -> Response:
    """Create an invitation and show its token once, on this page (it is not stored)."""
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    try:
        days = int(field(form, "expires_in_days") or "7")
    except ValueError:
        days = 0
    try:
        invitation_in = InvitationCreate.model_validate(
            {
                "contract": contract_from(form),
                "note": field(form, "note"),
                "expires_in_days": days,
            }
        )
        invitation, token = link_service.create_invitation(
            session=session,
            identity=ctx.identity,
            invitation_in=invitation_in,
            api_url=ctx.settings.public_url or None,
        )
        commit(session, ctx)
    except AccountError as exc:
        session.rollback()
        return redirect("/ui/links", error=exc.detail)
    except ValidationError as exc:
        session.rollback()
        return redirect("/ui/links", error=validation_message(exc))
    return _page(
        request,
        ctx,
        session,
        user,
        status_code=201,
        token=token,
        token_expires=invitation.expires_at,
        flash={"kind": "ok", "text": t("Invitation created. Copy the token below.")},
    )


@router.post("/links/accept", response_model=None)
def accept(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, form: CsrfForm
) -> Response:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))

    def work() -> str:
        token = field(form, "token")
        if len(token) < 10 or len(token) > 8_000:
            raise Invalid("paste the whole invitation token")
        link = link_service.accept_invitation(
            session=session,
            identity=ctx.identity,
            token=token,
            api_url=ctx.settings.public_url or None,
        )
        return t("Linked to {partner}.", partner=link.peer_label or link.peer_account)

    return act(request, ctx, session, user, "/ui/links", work)


@router.post("/links/{link_id}", response_model=None)
def change_link(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    link_id: str,
) -> Response:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))

    def work() -> str:
        try:
            link = link_service.get(
                session=session, account_id=ctx.account_id, link_id=link_id[:36]
            )
        except NotFound as exc:
            raise Missing(exc.detail) from exc
        op = field(form, "op")
        if op == "contract":
            patch_in = LinkPatch.model_validate({"contract": contract_from(form)})
            message = t("Contract saved.")
        elif op in ("suspend", "resume"):
            state = "suspended" if op == "suspend" else "active"
            patch_in = LinkPatch.model_validate({"state": state})
            message = t("Link suspended.") if op == "suspend" else t("Link resumed.")
        else:
            raise Invalid("unknown operation")
        was = link.state
        link_service.patch(session=session, identity=ctx.identity, link=link, patch_in=patch_in)
        if was != "active" and link.state == "active":
            delegation_service.roll_up_link(session=session, identity=ctx.identity, link=link)
        return message

    return act(request, ctx, session, user, "/ui/links", work)
