"""Logging for a node: plain text for people, or one JSON object a line (``TIX_LOG_FORMAT=json``).

A JSON line carries the time, level, logger and message, the exception if any, and whatever is
known about what the code was doing: the ticket number, the delegation id, the message id and
type of an envelope, and the trace id (``account.observability.tracing``). Those come from
``log_context`` (set around the handling of one inbound delivery), from the HTTP request being
served (its path parameters, looked up when a line is written) and from a record's ``extra``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from account.observability import tracing

# Fields a line may carry, whichever source sets them.
CONTEXT_FIELDS = (
    "account",
    "ticket",
    "delegation_id",
    "message_id",
    "message_type",
    "reason",
    "method",
    "route",
    "status",
)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:@/\-]{1,200}$")

_fields: ContextVar[Mapping[str, str] | None] = ContextVar("tix_log_fields", default=None)
# The ASGI scope of the request being served: routing fills in its path parameters later.
_request_scope: ContextVar[Mapping[str, Any] | None] = ContextVar("tix_log_scope", default=None)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (those that are set) to every line logged inside the block."""
    merged = dict(_fields.get() or {})
    merged.update({k: v for k, v in fields.items() if v})
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


@contextlib.contextmanager
def request_scope(scope: Mapping[str, Any]) -> Iterator[None]:
    """Lines logged while serving this request carry its ticket number or delegation id."""
    token = _request_scope.set(scope)
    try:
        yield
    finally:
        _request_scope.reset(token)


def _from_request(scope: Mapping[str, Any]) -> dict[str, str]:
    params = scope.get("path_params") or {}
    found: dict[str, str] = {}
    if "number" in params:
        found["ticket"] = str(params["number"])
    route = scope.get("route")
    path = getattr(route, "path", "")
    if "id" in params and path.startswith("/api/v1/delegations"):
        found["delegation_id"] = str(params["id"])
    return found


def current_fields() -> dict[str, str]:
    """What a line logged here and now would carry (without the record's own extras)."""
    found: dict[str, str] = {}
    scope = _request_scope.get()
    if scope is not None:
        found.update(_from_request(scope))
    found.update(_fields.get() or {})
    trace = tracing.current()
    if trace is not None:
        found["trace_id"] = trace.trace_id
        found["span_id"] = trace.span_id
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line; values from the wire are length-capped and escaped by JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(current_fields())
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value if isinstance(value, int | float) else str(value)[:300]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The usual text line, with the known ids appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = current_fields()
        fields.pop("span_id", None)
        pairs = [
            f"{k}={v}" for k, v in fields.items() if _SAFE_VALUE.match(v)
        ]  # a value from the wire that would break the line is left out
        return f"{text} [{' '.join(pairs)}]" if pairs else text


def configure(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """Send every log line to ``stream`` (stderr) in ``fmt`` ("text" or "json")."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the root handler too, so its lines are JSON as well.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
