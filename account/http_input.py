"""Refuse request input the database or the JSON layer cannot take, before any handler runs.

Found by the hostile-input suite (``tests/hostile``): Python's ``json`` quietly accepts what
later turns into a server error or an ambiguous value, and PostgreSQL refuses a NUL character
in text columns with an exception, so without this edge

* a lone surrogate (``"\\ud800"``) in a JSON string failed on encoding at the database (500);
* ``NaN`` / ``Infinity`` reached validation, whose 422 body cannot be serialised (500);
* a NUL (``\\u0000``) in a JSON string, a query parameter, a form field or the path was a 500
  on PostgreSQL (and stored on SQLite, so the two backends disagreed);
* a duplicate key silently kept its last value.

``StrictInput`` is a pure ASGI middleware placed inside the body-size limit (so it only ever
buffers a body already capped). For JSON bodies (``application/json`` and ``*+json``) it parses
the bytes strictly: no byte order mark, no duplicate keys, no ``NaN``/``Infinity``, no integer
over Python's digit limit, nesting at most ``MAX_DEPTH``, no lone surrogate and no NUL in any
key or string; then it hands the same bytes on (a body that is not JSON at all is left to the
app's own 422). For URL-encoded forms, the query string and the path, it refuses a NUL after
percent-decoding. Every refusal is ``400 {"detail": "..."}`` (a TMF ``Error``, which also has
``detail``, under ``/tmf-api/``). Multipart uploads stream through
untouched: their file bytes are binary, and the upload parser escapes its field values.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_DEPTH", "BadInput", "StrictInput", "check_json"]

MAX_DEPTH: Final = 64


class BadInput(ValueError):
    """The request carries input this node refuses; the message is the response's detail."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadInput(f"duplicate key {key[:40]!r} in JSON body")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise BadInput(f"{name} is not allowed in a JSON body")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BadInput("NUL character in JSON body")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput("lone surrogate in JSON body") from exc


def check_json(raw: bytes) -> None:
    """Refuse a JSON body that parses but must not pass (see the module docstring).

    Raises ``BadInput`` with the reason. A body that is not JSON at all is left to the app,
    which answers it with its usual 422 ``json_invalid``.
    """
    if raw.startswith(b"\xef\xbb\xbf"):  # Python's json takes it from bytes; JSON does not
        raise BadInput("byte order mark before JSON body")
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except BadInput:
        raise
    except RecursionError as exc:
        raise BadInput(f"JSON body nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # over Python's digit limit: a 400 too
            raise BadInput("integer too long in JSON body") from exc
        return  # not JSON (or not UTF-8): the app's own parser reports it
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadInput(f"JSON body nested deeper than {MAX_DEPTH}")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _has_nul(encoded: bytes, *, plus: bool = False) -> bool:
    if plus:
        encoded = encoded.replace(b"+", b" ")
    return b"\x00" in unquote_to_bytes(encoded)


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


def _is_form(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"application/x-www-form-urlencoded"


class StrictInput:
    """Answer 400 for JSON, forms, query strings and paths the node cannot store faithfully."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
        if _has_nul(raw_path) or _has_nul(scope.get("query_string", b""), plus=True):
            await _send_400(send, "NUL character in the URL", scope.get("path", ""))
            return
        content_type = b""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value
                break
        if not (_is_json(content_type) or _is_form(content_type)):
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if body and _is_json(content_type):
                check_json(body)
            elif body and _has_nul(body, plus=True):
                raise BadInput("NUL character in form data")
        except BadInput as exc:
            await _send_400(send, str(exc), scope.get("path", ""))
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then defers to ``then``."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


# The TMF621 facade answers every error as a TMF ``Error`` (account/tmf/views.py); so does this.
_TMF_PREFIX = "/tmf-api/"


def _error_body(path: str, detail: str) -> bytes:
    if path.startswith(_TMF_PREFIX):
        tmf = {"@type": "Error", "code": "400", "reason": "Bad Request", "message": detail}
        return json.dumps(tmf | {"status": "400", "detail": detail}).encode("utf-8")
    return json.dumps({"detail": detail}).encode("utf-8")


async def _send_400(send: Send, detail: str, path: str = "") -> None:
    body = _error_body(path, detail)
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
