"""The exchange hub's app served in-process on a free loopback port (uvicorn in a thread).

No broker: the audit tap is off, so directory and invitations work and nothing else is needed.
The hub's database is a SQLite file or a throw-away PostgreSQL database (``backend``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from sqlalchemy.engine import Engine

from exchange.hub.app import create_app, make_engine
from exchange.hub.config import HubSettings
from tests.support.db import database_url
from tests.support.private_broker import free_port

__all__ = ["HubServer", "serve_hub"]


@dataclass
class HubServer:
    url: str
    engine: Engine


@contextmanager
def serve_hub(workdir: Path, backend: str = "sqlite") -> Iterator[HubServer]:
    """A hub on ``http://127.0.0.1:<free port>`` with its database on ``backend`` (a SQLite
    file in ``workdir``, or a new PostgreSQL database dropped afterwards)."""
    hub_dir = workdir / "hub"
    hub_dir.mkdir(parents=True, exist_ok=True)
    with database_url(backend, hub_dir) as url:
        with _serve(HubSettings(database_url=url, audit_tap=False)) as server:
            yield server


@contextmanager
def _serve(settings: HubSettings) -> Iterator[HubServer]:
    engine = make_engine(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine=engine),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield HubServer(f"http://127.0.0.1:{port}", engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
