"""Mount the web UI on the node's app: pages under ``/ui``, static files, ``/`` → the UI."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from account.context import NodeContext
from account.web import auth, i18n, links, partners, reports, tickets, users
from account.web.deps import CsrfRefused, LoginRequired
from account.web.render import language_of, page, security_headers

__all__ = ["install"]

_STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the UI's routes, static files and error pages to ``app``."""
    for module in (auth, tickets, links, partners, reports, users):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=str(_STATIC)), name="ui-static")

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return security_headers(RedirectResponse("/ui/tickets", status_code=303))

    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    def ui_root() -> Response:
        return security_headers(RedirectResponse("/ui/tickets", status_code=303))

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        target = "/ui/login"
        if exc.next_url and exc.next_url != "/ui/tickets":
            target += "?" + urlencode({"next": exc.next_url})
        return security_headers(RedirectResponse(target, status_code=303))

    async def csrf_refused(request: Request, _exc: Exception) -> Response:
        ctx: NodeContext = request.app.state.ctx
        t = i18n.translator(language_of(request))
        return page(
            request,
            "error.html",
            ctx=ctx,
            user=None,
            status_code=403,
            heading=t("Refused"),
            message=t("The form was not sent from this site or has expired. Reload the page."),
        )

    async def server_error(request: Request, _exc: Exception) -> Response:
        """A page for the UI; the API keeps Starlette's plain 500. The server logs the error."""
        if not request.url.path.startswith("/ui"):
            return PlainTextResponse("Internal Server Error", status_code=500)
        ctx: NodeContext = request.app.state.ctx
        t = i18n.translator(language_of(request))
        return page(
            request,
            "error.html",
            ctx=ctx,
            user=None,
            status_code=500,
            heading=t("Something went wrong"),
            message=t("The node could not do this just now. Nothing was changed; try again."),
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(Exception, server_error)

    @app.get("/ui/{path:path}", include_in_schema=False)
    def ui_not_found(request: Request, path: str) -> Response:
        ctx: NodeContext = request.app.state.ctx
        t = i18n.translator(language_of(request))
        return page(
            request,
            "error.html",
            ctx=ctx,
            user=None,
            status_code=404,
            heading=t("Not found"),
            message=t("There is no such page, or it is not yours to see."),
        )
