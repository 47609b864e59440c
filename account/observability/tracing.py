"""W3C Trace Context (``traceparent``) carried with every envelope, so a chain can be followed.

A trace starts when a user action starts a chain (an HTTP request without a ``traceparent``
header) and follows everything it causes: each outbox row written under it gets a child
``traceparent`` (same trace id, its own span id), the relay sends it as an AMQP header, and the
receiving node continues the trace for the rows its inbox writes in turn. The header travels
outside the signed envelope: it is observability metadata, never trusted for anything else, and
a malformed one is ignored (a new trace starts instead).

Format (https://www.w3.org/TR/trace-context/): ``00-<32 hex trace id>-<16 hex span id>-<flags>``.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

HEADER = "traceparent"
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    """One span's place in a trace."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace."""
        return TraceContext(self.trace_id, _new_span_id(), self.flags)


def _new_span_id() -> str:
    while True:
        span = secrets.token_hex(8)
        if span != _ZERO_SPAN:
            return span


def new_trace() -> TraceContext:
    """The root span of a new trace (sampled)."""
    while True:
        trace = secrets.token_hex(16)
        if trace != _ZERO_TRACE:
            return TraceContext(trace, _new_span_id())


def parse(value: str | None) -> TraceContext | None:
    """A version-00 ``traceparent``, or None for anything else (never raises)."""
    if not value or len(value) != 55:
        return None
    match = _TRACEPARENT_RE.match(value)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


_current: ContextVar[TraceContext | None] = ContextVar("tix_trace", default=None)


def current() -> TraceContext | None:
    """The span this code runs in, if any."""
    return _current.get()


@contextlib.contextmanager
def span(parent: TraceContext | str | None) -> Iterator[TraceContext]:
    """Run the block in a child span of ``parent`` (a new trace when there is none)."""
    if isinstance(parent, str):
        parent = parse(parent)
    ctx = parent.child() if parent is not None else new_trace()
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def for_outbox() -> str:
    """The ``traceparent`` of an envelope written now: a child of the current span, or a new
    trace when nothing started one (a scheduler, a CLI command)."""
    parent = current()
    return (parent.child() if parent is not None else new_trace()).traceparent
