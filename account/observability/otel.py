"""OpenTelemetry spans for a node, when the optional ``otel`` extra is installed and enabled.

``pip install 'tix[otel]'`` brings ``opentelemetry-sdk`` and the OTLP/HTTP exporter (the API
alone comes with FastAPI and records nothing); ``TIX_OTEL=1`` turns it on. The standard
variables then apply: ``OTEL_TRACES_EXPORTER`` (``otlp``, the default, ``console`` or ``none``),
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME`` (default ``tix-node-<account>``),
``OTEL_TRACES_SAMPLER`` and the rest.

The backend plugs into ``account.observability.tracing``: each span there becomes an
OpenTelemetry span whose trace id and span id are the ones carried in the ``traceparent``
headers, a remote parent (from a header or an outbox row) is continued as such, and the current
OpenTelemetry context is the span's while the block runs (so other instrumentation nests).
The provider is Tix's own, not the global one: FastAPI (0.16x) traces requests by itself once a
global provider exists, which would double every HTTP span; whoever sets one up on purpose
(``opentelemetry-instrument``) gets FastAPI's spans beside these.
Spans: ``HTTP <method> <route>`` (server), ``outbox write``, ``publish <type>`` (producer; its
context is the header the envelope travels with), ``process <type>`` (consumer) and ``apply``.

Without the extra nothing here is imported: ``available()`` is False, ``configure`` logs a
warning if TIX_OTEL asked for it, and tracing stays what it was (ids in headers and logs).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from account.observability import tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

__all__ = ["OtelBackend", "available", "configure", "install", "shutdown"]

log = logging.getLogger("tix.otel")

_provider: Any = None


def available() -> bool:
    """Whether the ``otel`` extra (the OpenTelemetry SDK) is importable."""
    try:
        return (
            importlib.util.find_spec("opentelemetry.trace") is not None
            and importlib.util.find_spec("opentelemetry.sdk.trace") is not None
        )
    except (ImportError, ValueError):  # a parent package missing or hidden
        return False


def _hex_ids(span: Any) -> tracing.TraceContext:
    ctx = span.get_span_context()
    flags = format(int(ctx.trace_flags), "02x")
    return tracing.TraceContext(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), flags)


class OtelBackend:
    """``tracing.SpanBackend`` on an OpenTelemetry tracer."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def start(
        self,
        name: str,
        parent: tracing.TraceContext | None,
        kind: tracing.SpanKind,
        attributes: tracing.Attributes,
    ) -> Iterator[tracing.TraceContext]:
        from opentelemetry import context, trace

        if parent is None:
            parent_context: Any = context.Context()  # a new trace, whatever is current
        else:
            here = trace.get_current_span().get_span_context()
            if (
                here.is_valid
                and format(here.trace_id, "032x") == parent.trace_id
                and format(here.span_id, "016x") == parent.span_id
            ):
                parent_context = None  # the parent is the current span of this process
            else:  # from a header or an outbox row: a remote parent
                remote = trace.SpanContext(
                    trace_id=int(parent.trace_id, 16),
                    span_id=int(parent.span_id, 16),
                    is_remote=True,
                    trace_flags=trace.TraceFlags(int(parent.flags, 16)),
                )
                parent_context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        with self._tracer.start_as_current_span(
            name,
            context=parent_context,
            kind=getattr(trace.SpanKind, kind.upper()),
            attributes=dict(attributes),
        ) as span:
            yield _hex_ids(span)

    def annotate(self, name: str | None, attributes: tracing.Attributes) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if name:
            span.update_name(name)
        if attributes:
            span.set_attributes(dict(attributes))


def install(provider: TracerProvider) -> OtelBackend:
    """Send this process's spans to ``provider`` (tests pass one with an in-memory exporter)."""
    backend = OtelBackend(provider.get_tracer("tix"))
    tracing.set_backend(backend)
    return backend


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http "
            "(pip install 'tix[otel]'); spans go to the console instead"
        )
        return _exporter("console")
    return OTLPSpanExporter()


def configure(*, enabled: bool, service_name: str, account: str) -> bool:
    """Set up the SDK from the environment if ``enabled`` (``TIX_OTEL``); whether it did."""
    global _provider  # one provider per process
    if not enabled:
        return False
    if not available():
        log.warning("TIX_OTEL is on but OpenTelemetry is not installed (pip install 'tix[otel]')")
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name,
            "tix.account": account,
        }
    )
    provider = TracerProvider(resource=resource)  # the sampler follows OTEL_TRACES_SAMPLER
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    for name in (n.strip() for n in names.split(",")):
        if name and name != "none":
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    install(provider)
    _provider = provider
    log.info("OpenTelemetry tracing on (exporter %s)", names)
    return True


def shutdown() -> None:
    """Flush and stop the exporter of ``configure`` (at process exit)."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        tracing.set_backend(None)
        provider.shutdown()
        log.info("OpenTelemetry spans flushed")
