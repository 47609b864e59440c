"""Rendering pages: the Jinja2 environment, the common page context, flash messages, headers.

Autoescaping is on for every template. Every page gets the same security headers: a Content
Security Policy that allows only this node's own scripts, styles and images (no inline script,
no CDN), no framing, no referrer outside the node, ``nosniff`` and ``no-store``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from account.context import NodeContext
from account.hub import service as hub_service
from account.users.models import User
from account.web import i18n
from account.web.session import COOKIE_PATH, csrf_token, session_cookie
from exchange.clock import aware

__all__ = [
    "FLASH_COOKIE",
    "env",
    "language_of",
    "page",
    "redirect",
    "safe_next",
    "security_headers",
]

_HERE = Path(__file__).parent
FLASH_COOKIE = "tix_flash"
_FLASH_MAX = 600

env = Environment(
    loader=FileSystemLoader(str(_HERE / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


R = TypeVar("R", bound=Response)


def security_headers(response: R) -> R:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:16].replace("T", " ") if len(value) >= 16 else value
    return aware(value).strftime("%Y-%m-%d %H:%M")


def _size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


env.filters["when"] = _when
env.filters["size"] = _size
env.filters["urlpart"] = lambda value: quote(str(value), safe="")


def safe_next(value: str | None, default: str = "/ui/tickets") -> str:
    """A redirect target inside the UI only (no other host, no scheme, no backslashes)."""
    if not value or not value.startswith("/ui") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(ch) < 0x20 for ch in value) or "://" in value:
        return default
    if "/.." in value.split("?", 1)[0]:
        return default
    return value


def language_of(request: Request) -> str:
    """The page language: the language cookie, else the browser's preference, else English."""
    return i18n.negotiate(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
    )


def read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or len(raw) > 2 * _FLASH_MAX:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(data, dict):
        return None
    kind, text = data.get("kind"), data.get("text")
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return {"kind": kind, "text": text[:_FLASH_MAX]}


def redirect(url: str, *, ok: str | None = None, error: str | None = None) -> RedirectResponse:
    """303 to ``url`` (inside the UI), with a message for the next page if given."""
    response = RedirectResponse(safe_next(url), status_code=303)
    if ok or error:
        payload = json.dumps({"kind": "error" if error else "ok", "text": (error or ok or "")})
        value = base64.urlsafe_b64encode(payload[:_FLASH_MAX].encode()).decode().rstrip("=")
        response.set_cookie(
            FLASH_COOKIE, value, max_age=60, path=COOKIE_PATH, httponly=True, samesite="strict"
        )
    security_headers(response)
    return response


def page(
    request: Request,
    template: str,
    *,
    ctx: NodeContext,
    user: User | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """Render ``template`` with the common context (user, language, CSRF token, flash)."""
    lang = language_of(request)
    token = request.cookies.get(session_cookie(ctx.account_id))
    flash = read_flash(request)
    context: dict[str, Any] = {
        "request_path": request.url.path,
        "request_url": str(request.url.path)
        + (("?" + request.url.query) if request.url.query else ""),
        "user": user,
        "node_label": ctx.identity.label,
        "account_id": ctx.account_id,
        "lang": lang,
        "languages": i18n.LANGUAGES,
        "t": i18n.translator(lang),
        "csrf": csrf_token(secret=ctx.secret, session_token=token) if user and token else "",
        "flash": flash,
        "is_staff": bool(user and user.role in ("admin", "dispatcher", "engineer")),
        "is_dispatcher": bool(user and user.role in ("admin", "dispatcher")),
        "is_admin": bool(user and user.role == "admin"),
        # Invitations waiting at the hub, as the node last heard (account/hub/poller.py).
        "hub_pending": hub_service.pending_count(ctx) if user and user.role == "admin" else 0,
        **values,
    }
    html = env.get_template(template).render(context)
    response = HTMLResponse(html, status_code=status_code)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    response.headers["Content-Language"] = lang
    security_headers(response)
    return response
