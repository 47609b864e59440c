"""W3C Trace Context (``traceparent``) carried with every envelope, so a chain can be followed.

A trace starts when a user action starts a chain (an HTTP request without a ``traceparent``
header) and follows everything it causes: each outbox row written under it gets a child
``traceparent`` (same trace id, its own span id), the relay sends it as an AMQP header, and the
receiving node continues the trace for the rows its inbox writes in turn. The header travels
outside the signed envelope: it is observability metadata, never trusted for anything else, and
a malformed one is ignored (a new trace starts instead).

Format (https://www.w3.org/TR/trace-context/): ``00-<32 hex trace id>-<16 hex span id>-<flags>``.

Spans: without a backend a span is only these ids (for the header and the logs). With the
optional OpenTelemetry backend (``account.observability.otel``, ``TIX_OTEL=1``) every ``span``
and every ``for_outbox`` is also a real OpenTelemetry span whose ids *are* the ones here, so an
exported trace matches the ``traceparent`` headers on the wire hop by hop. ``recording()`` says
whether a backend is installed; callers add spans that only matter to it (publish, apply).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

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

SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
Attributes = Mapping[str, str | int | bool]


class SpanBackend(Protocol):
    """Records spans somewhere (``account.observability.otel``); the ids come from it."""

    def start(
        self, name: str, parent: TraceContext | None, kind: SpanKind, attributes: Attributes
    ) -> AbstractContextManager[TraceContext]:
        """A span child of ``parent`` (a new trace for None), current while the block runs."""

    def annotate(self, name: str | None, attributes: Attributes) -> None:
        """Rename the current span and/or add attributes to it."""


_backend: SpanBackend | None = None


def set_backend(backend: SpanBackend | None) -> SpanBackend | None:
    """Install (or with None remove) the span backend; returns the one it replaces."""
    global _backend  # one process-wide switch, set at start-up or by tests
    previous, _backend = _backend, backend
    return previous


def recording() -> bool:
    """Whether spans go to a backend (OpenTelemetry) rather than only into headers and logs."""
    return _backend is not None


def annotate(*, name: str | None = None, **attributes: str | int | bool) -> None:
    """Name the current span and add attributes (only a backend keeps them)."""
    backend = _backend
    if backend is not None:
        backend.annotate(name, attributes)


def current() -> TraceContext | None:
    """The span this code runs in, if any."""
    return _current.get()


@contextlib.contextmanager
def span(
    parent: TraceContext | str | None,
    *,
    name: str = "tix",
    kind: SpanKind = "internal",
    attributes: Attributes | None = None,
) -> Iterator[TraceContext]:
    """Run the block in a child span of ``parent`` (a new trace when there is none)."""
    if isinstance(parent, str):
        parent = parse(parent)
    backend = _backend
    if backend is None:
        ctx = parent.child() if parent is not None else new_trace()
        token = _current.set(ctx)
        try:
            yield ctx
        finally:
            _current.reset(token)
        return
    with backend.start(name, parent, kind, attributes or {}) as ctx:
        token = _current.set(ctx)
        try:
            yield ctx
        finally:
            _current.reset(token)


def for_outbox() -> str:
    """The ``traceparent`` of an envelope written now: a child of the current span, or a new
    trace when nothing started one (a scheduler, a CLI command). With a backend this is the
    span "outbox write" (ended at once: the row is written in the caller's transaction)."""
    parent = current()
    backend = _backend
    if backend is None:
        return (parent.child() if parent is not None else new_trace()).traceparent
    with backend.start("outbox write", parent, "internal", {}) as ctx:
        return ctx.traceparent
