"""The web UI's session cookie and CSRF tokens.

The session cookie ``tix_session_<account id>`` carries an access token made by ``account.security``
(HS256, ``iss``/``aud`` of this node, ``typ at+jwt``, short expiry) and is decoded by the same
strict ``decode_access_token`` the API uses; the user is loaded from the database on every
request, so a deactivated user is out at once. API keys never pass as a session. The cookie is
``HttpOnly``, ``SameSite=Strict``, scoped to ``/ui`` and ``Secure`` when the page came over
HTTPS.

CSRF: every form carries a token bound to the session, ``HMAC-SHA256(secret, label ‖ token)``,
checked in constant time. Before login (the login form) a random double-submit value is kept in
its own ``SameSite=Strict`` cookie and must match the form field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlmodel import Session

from account import security
from account.errors import InvalidCredentials
from account.users import service as user_service
from account.users.models import User

__all__ = [
    "COOKIE_PATH",
    "csrf_token",
    "csrf_valid",
    "issue_session",
    "login_csrf_cookie",
    "login_csrf_valid",
    "new_login_csrf",
    "session_cookie",
    "user_of_session",
]

COOKIE_PATH = "/ui"
_CSRF_LABEL = b"tix-web-csrf\x00"
_MAX_CSRF_CHARS = 200


def session_cookie(account_id: str) -> str:
    """The session cookie's name: per node, so nodes on one host (ports differ, cookies do
    not) keep their sessions apart."""
    return f"tix_session_{account_id}"


def login_csrf_cookie(account_id: str) -> str:
    return f"tix_login_csrf_{account_id}"


def issue_session(*, user: User, secret: bytes, account_id: str, minutes: int) -> str:
    """A session token for ``user``: an access token of this node, valid ``minutes``."""
    return security.create_access_token(
        username=user.username,
        role=user.role,
        secret=secret,
        account_id=account_id,
        minutes=minutes,
    )


def user_of_session(
    *, session: Session, token: str | None, secret: bytes, account_id: str
) -> User | None:
    """The active user behind a session cookie, or None for anything else (API keys too)."""
    if not token or security.is_api_key(token):
        return None
    try:
        username = security.decode_access_token(token, secret=secret, account_id=account_id)
    except InvalidCredentials:
        return None
    user = user_service.get_by_username(session=session, username=username)
    if user is None or not user.active:
        return None
    return user


def csrf_token(*, secret: bytes, session_token: str) -> str:
    """The CSRF token of the forms of one session."""
    mac = hmac.new(secret, _CSRF_LABEL + session_token.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def csrf_valid(*, secret: bytes, session_token: str | None, submitted: str | None) -> bool:
    """Whether ``submitted`` is this session's CSRF token (False without a session)."""
    if not session_token or not submitted or len(submitted) > _MAX_CSRF_CHARS:
        return False
    if not session_token.isascii() or not submitted.isascii():
        return False
    expected = csrf_token(secret=secret, session_token=session_token)
    return hmac.compare_digest(expected.encode("ascii"), submitted.encode("ascii"))


def new_login_csrf() -> str:
    """A fresh double-submit value for the login form."""
    return secrets.token_urlsafe(32)


def login_csrf_valid(cookie: str | None, submitted: str | None) -> bool:
    """Whether the login form's field matches its cookie (both present, short, equal)."""
    if not cookie or not submitted or len(cookie) > _MAX_CSRF_CHARS:
        return False
    if not cookie.isascii() or not submitted.isascii():
        return False
    return hmac.compare_digest(cookie.encode("ascii"), submitted.encode("ascii"))
