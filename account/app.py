"""The node's FastAPI application: routers, error mapping, body limit, health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text
from sqlmodel import Session, select

from account.admin import views as admin_views
from account.attachments import federation as attachment_federation
from account.attachments import views as attachment_views
from account.context import NodeContext
from account.delegations import views as delegation_views
from account.http_errors import install_error_handlers
from account.http_input import StrictInput
from account.http_limit import ConcurrencyLimit
from account.hub import views as hub_views
from account.links import views as link_views
from account.node import NodeRuntime
from account.observability import metrics as observability_metrics
from account.observability import otel
from account.observability.http import ObservabilityMiddleware
from account.reports import views as report_views
from account.sla import metrics as sla_metrics
from account.tickets import views as ticket_views
from account.tmf import views as tmf_views
from account.users import views as user_views
from account.web.install import install as web_install


def create_app(ctx: NodeContext, runtime: NodeRuntime | None = None) -> FastAPI:
    """The HTTP API of one node; ``runtime`` (transport, relay, consumer) runs with it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            await runtime.start()
        try:
            yield
        finally:
            if runtime is not None:
                await runtime.stop()
            # Flush OpenTelemetry's queue here: uvicorn ends the process with the signal it
            # caught, so code after ``uvicorn.run`` never runs (no-op unless TIX_OTEL set it up).
            otel.shutdown()

    app = FastAPI(
        title=f"Tix node {ctx.account_id}",
        version="1",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.state.runtime = runtime
    app.include_router(hub_views.router)  # before link_views: /api/v1/links/incoming
    for module in (user_views, ticket_views, delegation_views, link_views, admin_views):
        app.include_router(module.router)
    app.include_router(attachment_views.router)
    app.include_router(attachment_federation.router)
    app.include_router(tmf_views.router)  # TMF621 facade (account/tmf)
    app.include_router(report_views.router)
    install_error_handlers(app)
    web_install(app)  # the web UI under /ui (account/web), and / → /ui/tickets
    node_metrics = observability_metrics.for_runtime(ctx.engine, ctx.status, runtime)
    app.state.metrics = node_metrics
    node_metrics.registry.register(
        sla_metrics.SlaCollector(ctx.engine, runtime.sla if runtime is not None else None)
    )
    # Innermost: requests wait here holding no thread or connection (account/http_limit.py).
    app.add_middleware(ConcurrencyLimit)
    # Inside the body limit, so it only buffers capped bodies (tests/hostile found why).
    app.add_middleware(StrictInput)
    app.add_middleware(
        attachment_views.BodyLimits,
        max_bytes=ctx.settings.max_body_bytes,
        upload_max_bytes=ctx.settings.attachment_max_bytes + attachment_views.MULTIPART_OVERHEAD,
    )
    app.add_middleware(ObservabilityMiddleware, metrics=node_metrics)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "account": ctx.account_id}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        checks = {"database": "up", "broker": ctx.status.get("broker", "none")}
        try:
            with Session(ctx.engine) as session:
                session.exec(select(text("1"))).one()
        except Exception:
            checks["database"] = "down"
        # Ready means able to take writes: with the broker away they still commit and wait
        # in the outbox, so only the database decides; the broker's state is reported.
        ready = checks["database"] == "up"
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(node_metrics.render(), media_type=observability_metrics.CONTENT_TYPE)

    return app
