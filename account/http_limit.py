"""At most ``limit`` HTTP requests inside the app at once; the others wait, holding nothing.

Why: a sync view runs in AnyIO's thread pool (40 threads), and so do its sync dependencies and
the validation of its return value. A request holds the database connection from its first
query until its session closes, across those hops. With SQLite the node has one write
connection and a few reader connections for GET requests (``account.db``): under enough
concurrent requests every pool thread waits for a connection
while its holder waits for a pool thread to validate its response, and nothing moves until the
60 s pool timeout (measured: 50 concurrent clients, every request 60 s, most failing;
docs/performance.md "Scale"). Letting fewer requests in than there are threads keeps threads
free for the holder. Requests queue here in arrival order on the event loop, which costs
nothing while they wait.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# Well under AnyIO's default 40 worker threads, and more than one SQLite connection can use.
DEFAULT_LIMIT = 16


class ConcurrencyLimit:
    """Pure ASGI middleware: an asyncio semaphore around each HTTP request."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self._slots:
            await self.app(scope, receive, send)
