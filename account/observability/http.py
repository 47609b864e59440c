"""ASGI middleware: request latency per route template, a trace per request, log context.

Each request runs in a span: a child of its ``traceparent`` header when it has a valid one,
otherwise the root of a new trace (a user action starting a chain), so the envelopes it writes
carry that trace. With OpenTelemetry on (``account.observability.otel``) it is a server span
named ``HTTP <method> <route template>``. The latency histogram is labelled by the route *template*
(``/api/v1/tickets/{number}``), never the raw path, so label values stay few; requests that
match no route count as ``<unmatched>``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from account.observability import logs, tracing
from account.observability.metrics import NodeMetrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        incoming = _header(scope, b"traceparent")
        method = str(scope.get("method"))
        method = method if method in METHODS else "other"
        started = time.perf_counter()
        try:
            with (
                tracing.span(incoming, name=f"HTTP {method}", kind="server"),
                logs.request_scope(scope),
            ):
                try:
                    await self.app(scope, receive, send_status)
                finally:
                    if tracing.recording():  # the route is known once the app routed it
                        route = route_template(scope)
                        attributes: dict[str, str | int | bool] = {
                            "http.request.method": method,
                            "http.route": route,
                            "http.response.status_code": status["code"],
                        }
                        tracing.annotate(name=f"HTTP {method} {route}", **attributes)
        finally:
            self.metrics.http_latency.labels(
                method=method,
                route=route_template(scope),
                status=str(status["code"]),
            ).observe(time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Any = scope.get("headers") or []
    for key, value in headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
