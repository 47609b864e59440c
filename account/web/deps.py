"""Dependencies of the web pages: the logged-in user from the cookie, CSRF-checked forms.

Failures raise exceptions that ``account.web.install`` turns into pages: ``LoginRequired``
redirects to the login form, ``CsrfRefused`` is a 403 page. Neither ever reaches the JSON API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from account.deps import ContextDep, SessionDep
from account.users.models import User
from account.web.session import csrf_valid, session_cookie, user_of_session

__all__ = ["CsrfForm", "CsrfRefused", "LoginRequired", "WebUser", "field"]

MAX_FIELDS = 60


class LoginRequired(Exception):
    """No valid session: go to the login form and come back to ``next_url`` after."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


class CsrfRefused(Exception):
    """A form without this session's CSRF token."""


def web_user(request: Request, ctx: ContextDep, session: SessionDep) -> User:
    user = user_of_session(
        session=session,
        token=request.cookies.get(session_cookie(ctx.account_id)),
        secret=ctx.secret,
        account_id=ctx.account_id,
    )
    if user is None:
        target = request.url.path if request.method == "GET" else "/ui/tickets"
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        raise LoginRequired(target)
    return user


WebUser = Annotated[User, Depends(web_user)]


async def csrf_form(request: Request, ctx: ContextDep) -> FormData:
    """The submitted form, if it carries this session's CSRF token; ``CsrfRefused`` else."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        raise CsrfRefused()
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception as exc:  # malformed or over the limits: refused like a forged form
        raise CsrfRefused() from exc
    submitted = form.get("csrf")
    if not csrf_valid(
        secret=ctx.secret,
        session_token=request.cookies.get(session_cookie(ctx.account_id)),
        submitted=submitted if isinstance(submitted, str) else None,
    ):
        raise CsrfRefused()
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]


def field(form: FormData, name: str, default: str = "") -> str:
    """A text field of the form, stripped of surrounding whitespace ('' when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default
