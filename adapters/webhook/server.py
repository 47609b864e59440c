"""``tix adapter webhook serve``: a node process that hosts help-desk participants."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from account.app import create_app
from account.bootstrap import build_context, build_transport
from account.config import Settings
from account.node import NodeRuntime
from account.observability import logs
from adapters.webhook import (
    models,  # noqa: F401  (registers the adapter's tables)
    views,
)
from adapters.webhook.service import WebhookAdapter
from adapters.webhook.settings import WebhookSettings

log = logging.getLogger("tix.webhook")


def build(settings: Settings, webhook: WebhookSettings) -> tuple[WebhookAdapter, FastAPI]:
    """The adapter and its app (the node's API plus participants and the inbound endpoint)."""
    ctx = build_context(settings)
    runtime = NodeRuntime(ctx, build_transport(settings))
    adapter = WebhookAdapter(ctx, runtime, webhook)
    app = create_app(ctx, runtime)
    app.include_router(views.router)
    app.state.webhook = adapter
    return adapter, app


async def serve(host: str, port: int) -> None:
    import uvicorn

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    adapter, app = build(settings, WebhookSettings())
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    await adapter.start()
    try:
        await server.serve()
    finally:
        await adapter.stop()


def run(host: str, port: int) -> None:
    asyncio.run(serve(host, port))
