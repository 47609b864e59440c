"""Building and serving an adapter process: a node (context, runtime, API) plus the adapter.

``node_for`` migrates the adapter's own tables first (``adapters.hosting.migrate.prepare``), then
builds the node's context as ``tix serve`` does (which refuses a node schema that is not at head:
``tix db upgrade``); ``app_for`` is the node's API with the adapter's routes; ``serve`` runs the
whole under uvicorn, the adapter's tasks beside the runtime's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, FastAPI

from account.app import create_app
from account.bootstrap import build_context, build_transport
from account.config import Settings
from account.context import NodeContext
from account.node import NodeRuntime
from account.observability import logs
from adapters.hosting import migrate
from adapters.hosting.schema import AdapterSchema
from adapters.hosting.service import HostedAdapter


def node_for(
    settings: Settings, schema: AdapterSchema, broker: object | None = None
) -> tuple[NodeContext, NodeRuntime]:
    """The adapter's tables at head, then the node's context and runtime."""
    migrate.prepare(schema, settings.db_url)
    ctx = build_context(settings)
    return ctx, NodeRuntime(ctx, build_transport(settings, broker))


def app_for(adapter: HostedAdapter, router: APIRouter) -> FastAPI:
    """The node's API and the adapter's routes; ``request.app.state.adapter`` is the adapter."""
    app = create_app(adapter.ctx, adapter.runtime)
    app.include_router(router)
    app.state.adapter = adapter
    return app


async def serve(
    build: Callable[[Settings], tuple[HostedAdapter, FastAPI]], host: str, port: int
) -> None:
    import uvicorn

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    adapter, app = build(settings)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    await adapter.start()
    try:
        await server.serve()
    finally:
        await adapter.stop()


def run(build: Callable[[Settings], tuple[HostedAdapter, FastAPI]], host: str, port: int) -> None:
    asyncio.run(serve(build, host, port))
