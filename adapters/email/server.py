"""``tix adapter email serve``: a node process that hosts e-mail participants."""

from __future__ import annotations

import asyncio
import logging

from account.app import create_app
from account.bootstrap import build_context, build_transport
from account.config import Settings
from account.node import NodeRuntime
from account.observability import logs
from adapters.email import (
    models,  # noqa: F401  (registers the adapter's tables)
    views,
)
from adapters.email.service import EmailAdapter
from adapters.email.settings import MailSettings

log = logging.getLogger("tix.email")


def build(settings: Settings, mail: MailSettings) -> tuple[EmailAdapter, object]:
    """The adapter and its FastAPI app (the node's API plus ``/api/v1/participants``)."""
    ctx = build_context(settings)
    runtime = NodeRuntime(ctx, build_transport(settings))
    adapter = EmailAdapter(ctx, runtime, mail)
    app = create_app(ctx, runtime)
    app.include_router(views.router)
    app.state.email = adapter
    return adapter, app


async def serve(host: str, port: int) -> None:
    import uvicorn

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    adapter, app = build(settings, MailSettings())
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))  # type: ignore[arg-type]
    await adapter.start()
    try:
        await server.serve()
    finally:
        await adapter.stop()


def run(host: str, port: int) -> None:
    asyncio.run(serve(host, port))
