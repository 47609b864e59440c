"""Prometheus ``/metrics`` and the W3C trace context a chain carries (in-process, no broker).

The metrics come from the database (outbox states and lag, rejected messages by reason) and
from the process (deliveries by outcome and disposition, redeliveries, envelopes out by type,
HTTP latency per route template and status). The trace test follows one user action from its
HTTP request through the outbox, the relay's AMQP header, the receiving node's inbox and the
outbox rows that inbox writes in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.delegations import service as delegation_service
from account.delegations.models import DelegationCreate
from account.links.models import Contract
from account.messaging import inbox
from account.messaging.models import OutboxMessage, RejectedInbound
from account.messaging.relay import OutboxRelay
from account.observability import logs, tracing
from account.observability.http import ObservabilityMiddleware
from account.observability.metrics import NodeMetrics
from account.observability.transport import ObservedTransport
from account.tickets.models import Ticket
from account.users import service as user_service
from exchange.clock import utcnow
from exchange.inprocess import InProcessBroker, InProcessTransport
from exchange.signing import generate_key
from exchange.transport import Delivery, Outcome
from tests.support.db import clear_tables
from tests.support.inproc import Net

ADMIN = ("root", "root-password-1")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels (parsing it checks it)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    settings = Settings(account_id="acme", data_dir=tmp_path)
    identity = Identity(account_id="acme", label="ACME", key=generate_key())
    with session_scope(engine) as session:
        user_service.ensure_admin(session=session, username=ADMIN[0], password=ADMIN[1])
    yield NodeContext(settings=settings, engine=engine, identity=identity, secret=b"s" * 48)
    clear_tables(engine)


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as http:
        token = await http.post(
            "/api/v1/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]}
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield http


async def test_metrics_count_outbox_lag_rejections_and_http_latency_per_route_template(
    ctx: NodeContext, client: httpx.AsyncClient
) -> None:
    with session_scope(ctx.engine) as session:
        for i, state in enumerate(("pending", "pending", "sent", "failed")):
            session.add(
                OutboxMessage(
                    message_id=f"00000000-0000-4000-8000-00000000000{i}",
                    account_id="acme",
                    to_account="northwind",
                    type="ticket.comment",
                    subject="s",
                    body=b"{}",
                    state=state,
                    created_at=utcnow() - timedelta(seconds=120 - i),
                )
            )
        for reason in ("bad_signature", "bad_signature", "schema"):
            session.add(RejectedInbound(reason=reason, raw=b"x"))

    assert (await client.get("/api/v1/tickets/ACME-404")).status_code == 404
    assert (await client.get("/api/v1/tickets/ACME-405")).status_code == 404
    assert (await client.get("/api/v1/tickets")).status_code == 200
    assert (await client.get("/no/such/path/42")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(response.text)
    assert got[("tix_outbox_messages", (("state", "pending"),))] == 2
    assert got[("tix_outbox_messages", (("state", "sent"),))] == 1
    assert got[("tix_outbox_messages", (("state", "failed"),))] == 1
    assert got[("tix_outbox_lag_messages", ())] == 2
    assert 119 <= got[("tix_outbox_oldest_pending_seconds", ())] < 3600
    assert got[("tix_messages_rejected_total", (("reason", "bad_signature"),))] == 2
    assert got[("tix_messages_rejected_total", (("reason", "schema"),))] == 1
    assert got[("tix_broker_up", ())] == 0
    assert got[("tix_database_up", ())] == 1

    def count(route: str, status: str) -> float:
        key = (("method", "GET"), ("route", route), ("status", status))
        return got.get(("tix_http_request_duration_seconds_count", key), 0)

    # One series per route template, never per raw path.
    assert count("/api/v1/tickets/{number}", "404") == 2
    assert count("/api/v1/tickets", "200") == 1
    assert count("<unmatched>", "404") == 1
    assert not any("ACME-404" in str(labels) for _name, labels in got)


async def test_a_request_continues_an_incoming_trace_or_starts_one_for_its_envelopes(
    ctx: NodeContext,
) -> None:
    app = FastAPI()
    app.add_middleware(ObservabilityMiddleware, metrics=NodeMetrics(ctx.engine, {}))

    @app.get("/x/{number}")
    def probe(number: str) -> dict[str, str | None]:  # sync: runs in the thread pool
        made = tracing.parse(tracing.for_outbox())
        current = tracing.current()
        return {
            "trace": current.trace_id if current else None,
            "span": current.span_id if current else None,
            "row_trace": made.trace_id if made else None,
            "row_span": made.span_id if made else None,
            "ticket": logs.current_fields().get("ticket"),
        }

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        continued = (await http.get("/x/ACME-7", headers={"traceparent": INCOMING})).json()
        junk = (await http.get("/x/ACME-8", headers={"traceparent": "00-" + "0" * 32})).json()
        plain = (await http.get("/x/ACME-9")).json()
    assert continued["trace"] == continued["row_trace"] == TRACE
    assert continued["span"] != "00f067aa0ba902b7", "the request gets its own span"
    assert continued["row_span"] not in (continued["span"], "00f067aa0ba902b7")
    assert continued["ticket"] == "ACME-7"
    for started in (junk, plain):
        assert started["trace"] and started["trace"] != TRACE
        assert started["row_trace"] == started["trace"]
    assert junk["trace"] != plain["trace"]
    assert tracing.current() is None
    # Outside any span an envelope starts a trace of its own.
    assert tracing.parse(tracing.for_outbox()) is not None


async def test_a_trace_follows_a_chain_from_the_request_through_relay_and_inbox(
    tmp_path: Path,
    db_backend: str,
) -> None:
    with Net(tmp_path, db_backend) as net:
        up, down = net.add_peer("acme"), net.add_peer("north")
        net.link("acme", "north", Contract(auto_accept=True))
        number = net.open_ticket("acme")

        # The user action: a delegation made inside the request's span.
        with tracing.span(INCOMING), up.session() as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            delegation_service.delegate(
                session=session,
                identity=up.identity,
                ticket=ticket,
                delegation_in=DelegationCreate(partner="north"),
                actor="dispatcher",
            )
            session.commit()
        with up.session() as session:
            offer = session.exec(
                select(OutboxMessage).where(OutboxMessage.type == "delegation.offer")
            ).one()
        offer_trace = tracing.parse(offer.traceparent)
        assert offer_trace is not None and offer_trace.trace_id == TRACE

        broker = InProcessBroker()
        transport = ObservedTransport(InProcessTransport(broker))
        await transport.connect()
        await transport.declare_inbox("north")
        await transport.declare_inbox("acme")
        relay = OutboxRelay(up.engine, transport)
        assert await relay.drain_once() == 1
        assert transport.counters.published == {"delegation.offer": 1}

        seen: list[Delivery] = []
        in_span: list[str | None] = []

        async def handle(delivery: Delivery) -> Outcome:
            seen.append(delivery)
            current = tracing.current()
            in_span.append(current.trace_id if current else None)
            await asyncio.to_thread(
                inbox.receive, delivery.body, engine=down.engine, identities=down.identities
            )
            return Outcome.ack()

        consumer = asyncio.create_task(transport.consume("north", handle))
        try:
            async with asyncio.timeout(10):
                while not transport.counters.deliveries:  # settled, not just seen
                    await asyncio.sleep(0.01)
        finally:
            await transport.close()
            with contextlib.suppress(asyncio.CancelledError):
                consumer.cancel()
                await consumer

        assert seen[0].headers["traceparent"] == offer.traceparent
        assert in_span == [TRACE]
        assert transport.counters.deliveries == {("ack", ""): 1}
        # What the offer caused at north (the automatic acceptance) is in the same trace.
        with down.session() as session:
            caused = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        caused = [row for row in caused if row.type != "link.accept"]
        assert caused, "auto-accept sends delegation.accept"
        spans = set()
        for row in caused:
            parsed = tracing.parse(row.traceparent)
            assert parsed is not None and parsed.trace_id == TRACE, row.type
            spans.add(parsed.span_id)
        assert offer_trace.span_id not in spans and len(spans) == len(caused)


def test_metrics_still_answer_when_the_database_does_not(tmp_path: Path) -> None:
    unreachable = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'node.db'}")
    try:
        metrics = NodeMetrics(unreachable, {"broker": "up"}, inbound=lambda: {"applied": 3})
        got = samples(metrics.render().decode())
    finally:
        unreachable.dispose()
    assert got[("tix_database_up", ())] == 0
    assert got[("tix_broker_up", ())] == 1
    assert got[("tix_messages_in_total", (("outcome", "applied"),))] == 3
    assert not any(name.startswith("tix_outbox") for name, _labels in got)
