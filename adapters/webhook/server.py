"""``tix adapter webhook serve``: a node process that hosts help-desk participants."""

from __future__ import annotations

from fastapi import FastAPI

from account.config import Settings
from adapters.hosting import server
from adapters.webhook import SCHEMA, views
from adapters.webhook.service import WebhookAdapter
from adapters.webhook.settings import WebhookSettings


def build(settings: Settings, webhook: WebhookSettings) -> tuple[WebhookAdapter, FastAPI]:
    """The adapter and its app (the node's API plus participants and the inbound endpoint)."""
    ctx, runtime = server.node_for(settings, SCHEMA)
    adapter = WebhookAdapter(ctx, runtime, webhook)
    return adapter, server.app_for(adapter, views.router)


def run(host: str, port: int) -> None:
    server.run(lambda settings: build(settings, WebhookSettings()), host, port)
