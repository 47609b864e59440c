"""The users page (admins): the node's people, adding one, activating and deactivating.

The same service as ``/api/v1/users`` (``account.users.service``), so the same rules hold: a
taken username is refused, the last active admin cannot be deactivated or demoted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from account.deps import ContextDep, SessionDep, commit
from account.errors import AccountError, NotFound
from account.users import service as user_service
from account.users.models import ROLES, UserCreate, UserUpdate
from account.web import i18n
from account.web.deps import CsrfForm, WebUser, field
from account.web.render import language_of, page, redirect
from account.web.tickets import Missing, act, not_found_page, validation_message

router = APIRouter(prefix="/ui", include_in_schema=False)

_FIELDS = ("username", "full_name", "email", "role", "organisation")


def _page(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    users, total = user_service.list_users(session=session, limit=500, offset=0)
    return page(
        request,
        "users.html",
        ctx=ctx,
        user=user,
        status_code=status_code,
        people=users,
        total=total,
        roles=ROLES,
        form=form or dict.fromkeys(_FIELDS, "") | {"role": "dispatcher"},
        **values,
    )


@router.get("/users")
def users_page(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser
) -> HTMLResponse:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    return _page(request, ctx, session, user)


@router.post("/users", response_model=None)
def add_user(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, form: CsrfForm
) -> Response:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    values = {name: field(form, name) for name in _FIELDS}
    try:
        user_in = UserCreate.model_validate(
            {
                "username": values["username"],
                "password": form.get("password") if isinstance(form.get("password"), str) else "",
                "full_name": values["full_name"],
                "email": values["email"] or None,
                "role": values["role"],
                "organisation": values["organisation"] or None,
            }
        )
        created = user_service.create(session=session, user_in=user_in)
        commit(session, ctx)
    except (AccountError, ValidationError) as exc:
        session.rollback()
        message = validation_message(exc) if isinstance(exc, ValidationError) else exc.detail
        return _page(
            request,
            ctx,
            session,
            user,
            status_code=400,
            form=values,
            flash={"kind": "error", "text": message},
        )
    return redirect("/ui/users", ok=t("User {name} added.", name=created.username))


@router.post("/users/{user_id}", response_model=None)
def change_user(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    user_id: int,
) -> Response:
    if user.role != "admin":
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))

    def work() -> str:
        try:
            person = user_service.get(session=session, user_id=user_id)
        except NotFound as exc:
            raise Missing(exc.detail) from exc
        active = field(form, "active") == "1"
        user_service.update(session=session, user=person, user_in=UserUpdate(active=active))
        return (
            t("{name} can log in again.", name=person.username)
            if active
            else t("{name} can no longer log in.", name=person.username)
        )

    return act(request, ctx, session, user, "/ui/users", work)
