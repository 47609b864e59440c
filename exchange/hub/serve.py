"""Run the hub with uvicorn (``tix exchange serve``)."""

from __future__ import annotations

import uvicorn

from exchange.hub.app import create_app
from exchange.hub.config import HubSettings


def serve(host: str, port: int, settings: HubSettings | None = None) -> None:
    app = create_app(settings or HubSettings())
    uvicorn.run(app, host=host, port=port, log_level="info")
