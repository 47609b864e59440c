"""The HTTP edge of the account error tree, and a cap on request body size.

``install_error_handlers(app)`` maps ``account.errors`` to JSON ``{"detail": "..."}`` responses:
``NotFound`` 404, ``Conflict`` 409, ``Forbidden`` 403, ``Invalid`` 400, ``InvalidCredentials``
401 (with ``WWW-Authenticate: Bearer``).

``BodySizeLimit`` is a pure ASGI middleware that answers 413 before the app runs when the
declared ``Content-Length`` is over the limit, and stops a streamed (chunked) body as soon as it
passes the limit. The streamed case raises an ``HTTPException`` subclass from ``receive`` so
that FastAPI's body parsing re-raises it (other exceptions there become a generic 400) and the
app's exception middleware renders it; if it escapes the app instead, the middleware answers
413 itself, unless the response has already started.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from account.errors import AccountError, Conflict, Forbidden, Invalid, InvalidCredentials, NotFound

__all__ = ["BodySizeLimit", "install_error_handlers"]

_STATUS: Final[dict[type[AccountError], int]] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Forbidden: status.HTTP_403_FORBIDDEN,
    Invalid: status.HTTP_400_BAD_REQUEST,
    InvalidCredentials: status.HTTP_401_UNAUTHORIZED,
}


async def _account_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AccountError):  # registered for AccountError subclasses only
        raise exc
    code = next(
        (code for cls, code in _STATUS.items() if isinstance(exc, cls)),
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    return JSONResponse({"detail": exc.detail}, status_code=code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the account error → status code mapping on ``app``."""
    for cls in _STATUS:
        app.add_exception_handler(cls, _account_error)


_TOO_LARGE = "request body too large"


class _BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, detail=_TOO_LARGE)


class BodySizeLimit:
    """Refuse HTTP request bodies over ``max_bytes`` with 413 ``{"detail": ...}``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_413(send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _send_413(send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects malformed lengths; the stream count still applies
    return None


async def _send_413(send: Send) -> None:
    body = b'{"detail":"' + _TOO_LARGE.encode() + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": status.HTTP_413_CONTENT_TOO_LARGE,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
