"""SLA metrics for ``/metrics``: events by kind, clock and origin, tickets by SLA state, sweeps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from account.db import read_session
from account.delegations.models import Delegation
from account.sla.models import SlaEventRecord
from account.tickets.models import Ticket
from exchange.clock import utcnow

STATES = ("none", "ok", "met", "at_risk", "breached")


class SlaCollector(Collector):
    """Counts in the database at each scrape (true across restarts), plus the scheduler's own."""

    def __init__(self, engine: Engine, scheduler: Any | None = None) -> None:
        self._engine = engine
        self._scheduler = scheduler

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        with read_session(self._engine) as session:
            events = session.exec(
                select(
                    SlaEventRecord.kind,
                    SlaEventRecord.clock,
                    SlaEventRecord.origin,
                    func.count(),
                ).group_by(SlaEventRecord.kind, SlaEventRecord.clock, SlaEventRecord.origin)
            ).all()
            by_state = dict(
                session.exec(
                    select(Ticket.sla_state, func.count()).group_by(Ticket.sla_state)
                ).all()
            )
            due = session.exec(
                select(func.count()).where(
                    col(Delegation.sla_next_check_at).is_not(None),
                    col(Delegation.sla_next_check_at) <= utcnow(),
                )
            ).one()
        family = CounterMetricFamily(
            "tix_sla_events",
            "SLA warnings and breaches, by clock and origin (local: detected here)",
            labels=["kind", "clock", "origin"],
        )
        for kind, clock, origin, count in sorted(events):
            family.add_metric([kind, clock, origin], count)
        yield family
        tickets = GaugeMetricFamily(
            "tix_sla_tickets", "Tickets by the worst SLA state of their chain", labels=["state"]
        )
        for state in STATES:
            tickets.add_metric([state], by_state.get(state, 0))
        yield tickets
        yield GaugeMetricFamily(
            "tix_sla_checks_due", "Delegations whose SLA check time has come", value=due
        )
        if self._scheduler is not None:
            yield CounterMetricFamily(
                "tix_sla_sweeps", "SLA sweeps run by this process", value=self._scheduler.sweeps
            )
            yield GaugeMetricFamily(
                "tix_sla_last_sweep_seconds",
                "Duration of the last SLA sweep",
                value=self._scheduler.last_sweep_seconds,
            )
