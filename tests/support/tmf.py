"""TMF621 test helpers: the v5.0.1 specification's schemas as validators, and a listener.

The specification is read from ``../shared/specs/tmf621/`` beside the repository (it is not
copied into the project). ``Listener`` is a real HTTP server on loopback that records the
events POSTed to it and can be told to answer 503 (to play a listener that is down).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "tmf621"
SPEC_V5 = SPEC_DIR / "TMF621-Trouble_Ticket-v5.0.1.oas.yaml"


@cache
def spec() -> dict[str, Any]:
    """The v5.0.1 OpenAPI document; fails (never skips) when it is missing: CI has it."""
    if not SPEC_V5.exists():
        pytest.fail(f"the TMF621 specification is missing at {SPEC_V5}")
    loaded: dict[str, Any] = yaml.safe_load(SPEC_V5.read_text())
    return loaded


def _discriminated(node: Any) -> Any:
    """``oneOf`` + ``discriminator.mapping`` → the mapped schema chosen by ``@type``.

    Spec quirk: in TMF621 v5.0.1 the alternatives of e.g. ``PartyRefOrPartyRoleRef``
    (``PartyRef`` | ``PartyRoleRef``) accept the same objects, so plain JSON Schema ``oneOf``
    refuses every instance ("valid under each of"); OpenAPI means the ``discriminator`` to pick
    one. This rewrites such a ``oneOf`` into exactly that choice (``if @type == K then
    mapping[K]``), keeping ``anyOf`` of the alternatives for objects without a known ``@type``.
    """
    if isinstance(node, list):
        return [_discriminated(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _discriminated(value) for key, value in node.items()}
    mapping = (out.get("discriminator") or {}).get("mapping")
    if "oneOf" in out and mapping:
        prop = out["discriminator"].get("propertyName", "@type")
        choices = out.pop("oneOf")
        out["anyOf"] = choices
        out["allOf"] = [*out.get("allOf", [])] + [
            {
                "if": {"properties": {prop: {"const": key}}, "required": [prop]},
                "then": {"$ref": ref},
            }
            for key, ref in mapping.items()
        ]
    return out


@cache
def patched_spec() -> dict[str, Any]:
    """The specification with its discriminated ``oneOf`` unions made checkable (see above)."""
    patched: dict[str, Any] = _discriminated(spec())
    return patched


def schema_errors(name: str, instance: Any) -> list[str]:
    """Why ``instance`` does not validate against ``#/components/schemas/<name>`` (or [])."""
    document = patched_spec()
    validator = jsonschema.Draft7Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.server.down:
            self.server.refused += 1
            self.send_response(503)
            self.end_headers()
            return
        with self.server.lock:
            self.server.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.down = False
        self.refused = 0


class Listener:
    """What a TMF client's listener received, and a switch to make it answer 503."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/listener"

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._server.lock:
            return list(self._server.received)

    def types(self) -> list[str]:
        return [str(e["eventType"]) for e in self.events]

    def set_down(self, down: bool) -> None:
        self._server.down = down

    @property
    def refused(self) -> int:
        return self._server.refused


@contextmanager
def listener() -> Iterator[Listener]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Listener(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
