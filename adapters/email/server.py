"""``tix adapter email serve``: a node process that hosts e-mail participants."""

from __future__ import annotations

from fastapi import FastAPI

from account.config import Settings
from adapters.email import SCHEMA, views
from adapters.email.service import EmailAdapter
from adapters.email.settings import MailSettings
from adapters.hosting import server


def build(settings: Settings, mail: MailSettings) -> tuple[EmailAdapter, FastAPI]:
    """The adapter and its FastAPI app (the node's API plus ``/api/v1/participants``)."""
    ctx, runtime = server.node_for(settings, SCHEMA)
    adapter = EmailAdapter(ctx, runtime, mail)
    return adapter, server.app_for(adapter, views.router)


def run(host: str, port: int) -> None:
    server.run(lambda settings: build(settings, MailSettings()), host, port)
