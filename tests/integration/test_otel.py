"""OpenTelemetry spans (the ``otel`` extra) across two nodes in one process on the in-process
transport: one user action is one trace, from ACME's HTTP request through its outbox, the
publish, Northwind's consume and apply, Northwind's automatic acceptance and back to ACME, and
every span's ids are the ``traceparent`` the envelopes carried. Without the extra (a subprocess
where the SDK cannot be imported; the API comes with FastAPI) a node works as before.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from account.app import create_app
from account.bootstrap import build_context, init_node
from account.config import Settings
from account.messaging.models import OutboxMessage
from account.node import NodeRuntime
from account.observability import otel, tracing
from account.observability.transport import ObservedTransport
from exchange.inprocess import InProcessBroker, InProcessTransport
from exchange.transport import Delivery, Handler, Outcome

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is part of the dev extra")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

PASSWORD = "otel-password-1"


class RecordingTransport(InProcessTransport):
    """Remembers the headers of every delivery it hands to the consumer."""

    def __init__(self, broker: InProcessBroker, seen: list[Delivery]) -> None:
        super().__init__(broker)
        self._seen = seen

    async def consume(self, account_id: str, handler: Handler) -> None:
        async def record(delivery: Delivery) -> Outcome:
            self._seen.append(delivery)
            return await handler(delivery)

        await super().consume(account_id, record)


@dataclass
class Node:
    account_id: str
    settings: Settings
    client: httpx.AsyncClient
    runtime: NodeRuntime

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        assert response.status_code < 400, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.install(provider)
    try:
        yield exporter
    finally:
        tracing.set_backend(None)
        provider.shutdown()


async def _eventually(what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if result := await probe():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node, list[Delivery]]]:
    broker = InProcessBroker()
    seen: list[Delivery] = []
    async with AsyncExitStack() as stack:
        nodes = []
        for account, label in (("acme-ot", "ACME"), ("north-ot", "Northwind")):
            settings = Settings(
                account_id=account,
                display_name=label,
                data_dir=tmp_path / account,
                transport="inprocess",
                relay_poll_seconds=0.1,
            )
            init_node(settings, admin="admin", password=PASSWORD)
            ctx = build_context(settings)
            runtime = NodeRuntime(ctx, ObservedTransport(RecordingTransport(broker, seen)))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=create_app(ctx, runtime)),
                    base_url=f"http://{account}.test",
                )
            )
            await runtime.start()
            stack.push_async_callback(runtime.stop)
            token = await client.post(
                "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            nodes.append(Node(account, settings, client, runtime))
        yield nodes[0], nodes[1], seen


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _parent_of(child: ReadableSpan) -> str:
    assert child.parent is not None, child.name
    return _hex(child.parent.span_id, 16)


def _traceparent(span: ReadableSpan) -> str:
    """The W3C header of ``span`` (flags as OpenTelemetry set them: sampled, maybe random)."""
    context = span.get_span_context()
    assert context is not None
    flags = _hex(int(context.trace_flags), 2)
    return f"00-{_hex(context.trace_id, 32)}-{_hex(context.span_id, 16)}-{flags}"


def _span_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return _hex(context.span_id, 16)


async def test_one_delegation_is_one_trace_across_both_nodes_with_parent_child_links(
    spans: InMemorySpanExporter, pair: tuple[Node, Node, list[Delivery]]
) -> None:
    acme, north, seen = pair

    async def both_up() -> bool:
        return await _ready(acme) and await _ready(north)

    await _eventually("both nodes connected", both_up)
    invitation = await acme.call(
        "POST", "/api/v1/links/invitations", json={"contract": {"auto_accept": True}}
    )
    await north.call("POST", "/api/v1/links/accept", json={"token": invitation["token"]})

    async def linked() -> bool:
        links = await acme.call("GET", "/api/v1/links")
        return any(link["state"] == "active" for link in links["items"])

    await _eventually("the link at acme", linked)
    ticket = await acme.call("POST", "/api/v1/tickets", json={"title": "Lift 3 stuck"})
    spans.clear()
    seen.clear()
    await acme.call(
        "POST",
        f"/api/v1/tickets/{ticket['number']}/delegations",
        json={"partner": north.account_id},
    )

    async def accepted_back() -> bool:
        return any(d.headers.get("x-tix-type") == "delegation.accept" for d in seen) and any(
            s.name == "process delegation.accept" for s in spans.get_finished_spans()
        )

    await _eventually("north's acceptance back at acme", accepted_back)
    finished = list(spans.get_finished_spans())
    http = _by_name(finished, "HTTP POST /api/v1/tickets/{number}/delegations")
    trace_id = _hex(http.context.trace_id, 32) if http.context else ""
    in_trace = [s for s in finished if s.context and _hex(s.context.trace_id, 32) == trace_id]

    # ACME: the request, the offer written to the outbox under it, its publish.
    publish_offer = _by_name(in_trace, "publish delegation.offer")
    writes = [s for s in in_trace if s.name == "outbox write"]
    offer_write = next(s for s in writes if _span_id(s) == _parent_of(publish_offer))
    assert _parent_of(offer_write) == _span_id(http)
    with Session(acme.runtime.ctx.engine) as session:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.type == "delegation.offer")
        ).one()
    assert row.traceparent == _traceparent(offer_write)

    # On the wire: the offer's header is the publish span's context.
    offer = next(d for d in seen if d.headers.get("x-tix-type") == "delegation.offer")
    assert offer.headers["traceparent"] == _traceparent(publish_offer)

    # Northwind: consume continues the header (a remote parent), apply runs inside it, and what
    # apply writes (the automatic acceptance) is a child of apply.
    process_offer = _by_name(in_trace, "process delegation.offer")
    assert _parent_of(process_offer) == _span_id(publish_offer)
    assert process_offer.parent is not None and process_offer.parent.is_remote
    assert process_offer.attributes is not None
    assert process_offer.attributes["messaging.destination.name"] == north.account_id
    assert process_offer.attributes["tix.outcome"] == "ack"
    applies = [s for s in in_trace if s.name == "apply"]
    apply_offer = next(s for s in applies if _parent_of(s) == _span_id(process_offer))
    publish_accept = _by_name(in_trace, "publish delegation.accept")
    accept_write = next(s for s in writes if _span_id(s) == _parent_of(publish_accept))
    assert _parent_of(accept_write) == _span_id(apply_offer)

    # And back at ACME, still the same trace.
    process_accept = _by_name(in_trace, "process delegation.accept")
    assert _parent_of(process_accept) == _span_id(publish_accept)
    back = next(d for d in seen if d.headers.get("x-tix-type") == "delegation.accept")
    assert back.headers["traceparent"] == _traceparent(publish_accept)
    kinds = {s.name: s.kind.name for s in in_trace}
    assert kinds["publish delegation.offer"] == "PRODUCER"
    assert kinds["process delegation.offer"] == "CONSUMER"
    assert kinds["HTTP POST /api/v1/tickets/{number}/delegations"] == "SERVER"
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 201


async def _ready(node: Node) -> bool:
    return bool(node.runtime.ctx.status.get("broker") == "up")


async def test_an_incoming_traceparent_is_continued_by_the_request_span(
    spans: InMemorySpanExporter, pair: tuple[Node, Node, list[Delivery]]
) -> None:
    acme, _north, _seen = pair
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    await acme.call("POST", "/api/v1/tickets", json={"title": "traced"}, headers=headers)
    http = _by_name(list(spans.get_finished_spans()), "HTTP POST /api/v1/tickets")
    assert http.context is not None and _hex(http.context.trace_id, 32) == trace_id
    assert _parent_of(http) == parent
    with Session(acme.runtime.ctx.engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
    assert rows == []  # a local ticket sends nothing; the span still exists


HIDDEN = """
import importlib.abc, json, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, Hide())
from account.observability import otel, tracing
import account.app, account.cli  # the whole node imports without the extra

out = {"available": otel.available()}
out["configured"] = otel.configure(enabled=True, service_name="t", account="acme")
out["recording"] = tracing.recording()
with tracing.span(None, name="x") as span:
    out["row"] = tracing.parse(tracing.for_outbox()).trace_id == span.trace_id
out["loaded"] = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
print(json.dumps(out))
"""


def test_without_the_extra_a_node_traces_as_before() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HIDDEN], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "available": False,
        "configured": False,
        "recording": False,
        "row": True,
        "loaded": [],
    }
    assert "OpenTelemetry is not installed" in done.stderr
