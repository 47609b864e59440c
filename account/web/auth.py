"""Login, logout and the language switch of the web UI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from account.deps import ContextDep, SessionDep, client_address
from account.users import service as user_service
from account.web import i18n
from account.web.deps import CsrfForm, WebUser
from account.web.render import language_of, page, redirect, safe_next, security_headers
from account.web.session import (
    COOKIE_PATH,
    issue_session,
    login_csrf_cookie,
    login_csrf_valid,
    new_login_csrf,
    session_cookie,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(
    request: Request,
    ctx: ContextDep,
    *,
    next_url: str,
    error: str = "",
    username: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    token = new_login_csrf()
    response = page(
        request,
        "login.html",
        ctx=ctx,
        user=None,
        status_code=status_code,
        login_csrf=token,
        next=safe_next(next_url),
        error=error,
        username=username,
    )
    response.set_cookie(
        login_csrf_cookie(ctx.account_id),
        token,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
def login_form(request: Request, ctx: ContextDep, next: str = "/ui/tickets") -> HTMLResponse:
    return _login_page(request, ctx, next_url=next[:500])


@router.post("/login")
def login(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/ui/tickets",
) -> Response:
    t = i18n.translator(language_of(request))
    if not login_csrf_valid(request.cookies.get(login_csrf_cookie(ctx.account_id)), csrf):
        return _login_page(
            request,
            ctx,
            next_url=next,
            error=t("The form expired. Please try again."),
            username=username,
            status_code=403,
        )
    try:
        user = user_service.sign_in(
            session=session,
            throttle=ctx.login_throttle,
            username=username,
            password=password,
            address=client_address(request),
        )
    except user_service.SignInThrottled as exc:
        minutes = max(1, -(-exc.retry_after // 60))
        wait = "Too many failed sign-ins. Please try again in {minutes} min."
        throttled = _login_page(
            request,
            ctx,
            next_url=next,
            error=t(wait, minutes=minutes),
            username=username,
            status_code=429,
        )
        throttled.headers["Retry-After"] = str(exc.retry_after)
        return throttled
    if user is None:
        return _login_page(
            request,
            ctx,
            next_url=next,
            error=t("Incorrect username or password."),
            username=username,
            status_code=401,
        )
    minutes = ctx.settings.access_token_minutes
    token = issue_session(user=user, secret=ctx.secret, account_id=ctx.account_id, minutes=minutes)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        session_cookie(ctx.account_id),
        token,
        max_age=minutes * 60,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(login_csrf_cookie(ctx.account_id), path=COOKIE_PATH)
    return security_headers(response)


@router.post("/logout")
def logout(ctx: ContextDep, _user: WebUser, _form: CsrfForm) -> Response:
    response = redirect("/ui/login")
    response.delete_cookie(
        session_cookie(ctx.account_id), path=COOKIE_PATH, httponly=True, samesite="strict"
    )
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/ui/tickets") -> Response:
    """Remember the chosen language in a cookie and go back to the page."""
    response = RedirectResponse(safe_next(next[:2000]), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE,
            code,
            max_age=365 * 24 * 3600,
            path=COOKIE_PATH,
            samesite="strict",
            secure=_secure(request),
        )
    return security_headers(response)
