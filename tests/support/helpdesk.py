"""A help desk on loopback for the webhook adapter's tests: records each POST it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HelpDesk(ThreadingHTTPServer):
    """Records each POST (headers and exact body); answers 503 while ``down``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.down = False
        self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/tix"

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.calls)

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.received()]


class _Handler(BaseHTTPRequestHandler):
    server: HelpDesk

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.down:
            self.server.refused += 1
            self.send_response(503)
            self.end_headers()
            return
        with self.server.lock:
            self.server.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def running_helpdesk() -> Iterator[HelpDesk]:
    """A ``HelpDesk`` serving on 127.0.0.1 until the block ends."""
    server = HelpDesk()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
