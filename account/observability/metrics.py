"""Prometheus metrics of one node (``GET /metrics``), each node with its own registry.

Counted in the database at scrape time (true across restarts): outbox rows by state, the outbox
lag (pending rows) and the age of the oldest pending row, and inbound messages rejected by
reason. Counted in this process since it started: inbound deliveries by outcome, by disposition
and redelivered, envelopes published by type, and HTTP request latency per route template and
status. More metrics (e.g. SLA counters) register on ``NodeMetrics.registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from account.db import read_session
from account.messaging.models import OutboxMessage, RejectedInbound
from account.observability.transport import TransportCounters
from exchange.clock import aware, utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _NodeCollector(Collector):
    """Reads the database and the in-process counters at each scrape."""

    def __init__(
        self,
        engine: Engine,
        status: Mapping[str, str],
        inbound: Callable[[], Mapping[str, int]],
        transport: Callable[[], TransportCounters | None],
    ) -> None:
        self._engine = engine
        self._status = status
        self._inbound = inbound
        self._transport = transport

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        try:
            yield from self._from_database()
            database_up = 1
        except SQLAlchemyError:
            database_up = 0  # the other metrics still tell what the process knows
        yield GaugeMetricFamily(
            "tix_database_up", "1 when the database answered this scrape", value=database_up
        )
        yield from self._from_process()

    def _from_database(self) -> Iterable[Metric]:
        with read_session(self._engine) as session:
            by_state = dict(
                session.exec(
                    select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
                ).all()
            )
            oldest = session.exec(
                select(func.min(OutboxMessage.created_at)).where(OutboxMessage.state == "pending")
            ).one()
            rejected = dict(
                session.exec(
                    select(RejectedInbound.reason, func.count()).group_by(RejectedInbound.reason)
                ).all()
            )
        outbox = GaugeMetricFamily(
            "tix_outbox_messages", "Outbox rows by state (database)", labels=["state"]
        )
        for state in sorted(set(by_state) | {"pending", "sent", "failed", "superseded"}):
            outbox.add_metric([state], by_state.get(state, 0))
        yield outbox
        yield GaugeMetricFamily(
            "tix_outbox_lag_messages",
            "Envelopes committed but not yet confirmed by the broker (pending outbox rows)",
            value=by_state.get("pending", 0),
        )
        age = (utcnow() - aware(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "tix_outbox_oldest_pending_seconds",
            "Age of the oldest pending outbox row, 0 when none is pending",
            value=max(age, 0.0),
        )
        family = CounterMetricFamily(
            "tix_messages_rejected",
            "Inbound messages rejected by a receiver check, by reason (database)",
            labels=["reason"],
        )
        for reason, count in sorted(rejected.items()):
            family.add_metric([reason], count)
        yield family

    def _from_process(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "tix_messages_in",
            "Inbound deliveries handled by this process, by outcome",
            labels=["outcome"],
        )
        for outcome, count in sorted(self._inbound().items()):
            family.add_metric([outcome], count)
        yield family

        counters = self._transport()
        if counters is not None:
            family = CounterMetricFamily(
                "tix_messages_out", "Envelopes published and confirmed, by type", labels=["type"]
            )
            for message_type, count in sorted(counters.published.items()):
                family.add_metric([message_type], count)
            yield family
            family = CounterMetricFamily(
                "tix_consumer_deliveries",
                "Inbound deliveries settled, by disposition and reason",
                labels=["disposition", "reason"],
            )
            for (disposition, reason), count in sorted(counters.deliveries.items()):
                family.add_metric([disposition, reason], count)
            yield family
            yield CounterMetricFamily(
                "tix_consumer_redeliveries",
                "Deliveries the broker had handed out before (redelivered or counted)",
                value=counters.redeliveries,
            )
        yield GaugeMetricFamily(
            "tix_broker_up",
            "1 while the broker connection is up",
            value=1 if self._status.get("broker") == "up" else 0,
        )


class NodeMetrics:
    """The registry of one node and the metrics code elsewhere updates."""

    def __init__(
        self,
        engine: Engine,
        status: Mapping[str, str],
        *,
        inbound: Callable[[], Mapping[str, int]] = dict,
        transport: Callable[[], TransportCounters | None] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http_latency = Histogram(
            "tix_http_request_duration_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_NodeCollector(engine, status, inbound, transport))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def for_runtime(engine: Engine, status: Mapping[str, str], runtime: Any | None) -> NodeMetrics:
    """Metrics of a node, reading the runtime's counters (and its transport's) when it has one."""
    if runtime is None:
        return NodeMetrics(engine, status)

    def transport() -> TransportCounters | None:
        counters = getattr(runtime.transport, "counters", None)
        return counters if isinstance(counters, TransportCounters) else None

    return NodeMetrics(engine, status, inbound=lambda: dict(runtime.counters), transport=transport)
