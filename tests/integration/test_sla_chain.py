"""SLA clocks along a four-level chain of in-process nodes under a frozen clock.

The GC delegates to l1, l1 to l2, l2 to l3; each link has its own contract. Only the l2 → l3
contract is tight, so only level 3 can breach: its warning and breach must reach the GC once,
with the level and the company as each link discloses it, however often the sweep runs or a
message is delivered twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from account.delegations.models import Delegation
from account.links.models import Contract
from account.sla import flows as sla_flows
from account.sla import service as sla_service
from account.sla.models import SlaEventRecord
from account.tickets import service as ticket_service
from account.tickets.models import Ticket, TicketEvent
from account.users.models import User
from exchange.clock import aware, parse_instant
from tests.support.inproc import FrozenClock, Net, frozen_clock


def policy(response: int | None, resolution: int | None, rework: str = "restart") -> dict:
    targets = {}
    if response is not None:
        targets["response_minutes"] = response
    if resolution is not None:
        targets["resolution_minutes"] = resolution
    return {"targets": {"normal": targets}, "rework": rework}


LOOSE = policy(60, 600)
MIDDLE = policy(60, 300)
TIGHT = policy(10, 60)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    # Hours in the past: invitation JWTs are checked against the real clock.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
    with frozen_clock(start) as frozen:
        yield frozen


class Chain4:
    def __init__(self, net: Net, clock: FrozenClock, numbers: dict[str, str]) -> None:
        self.net, self.clock, self.numbers = net, clock, numbers

    def sweep(self, name: str) -> int:
        peer = self.net.peers[name]
        with peer.session() as session:
            sent = sla_flows.sweep_once(session=session, identities=peer.identities)
            session.commit()
        self.net.collect(name)
        return sent

    def sweep_all(self) -> int:
        sent = sum(self.sweep(name) for name in ("l3", "l2", "l1", "gc"))
        self.net.drain_fifo()
        return sent

    def events(self, name: str) -> list[SlaEventRecord]:
        with self.net.peers[name].session() as session:
            return list(session.exec(select(SlaEventRecord).order_by(col(SlaEventRecord.id))).all())

    def ticket(self, name: str) -> Ticket:
        return self.net.peers[name].ticket(self.numbers[name])

    def delegation(self, name: str, role: str) -> Delegation:
        ticket = self.ticket(name)
        with self.net.peers[name].session() as session:
            return session.exec(
                select(Delegation).where(Delegation.ticket_id == ticket.id, Delegation.role == role)
            ).one()

    def status(self, name: str, target: str) -> None:
        self.net.set_status(name, self.numbers[name], target)
        self.net.drain_fifo()


def build(
    net: Net,
    clock: FrozenClock,
    *,
    contracts: tuple[dict, dict, dict] = (LOOSE, MIDDLE, TIGHT),
    disclosure: str = "named",
) -> Chain4:
    names = ["gc", "l1", "l2", "l3"]
    for name in names:
        net.add_peer(name, label=f"{name.upper()} Ltd")
    for (up, down), sla in zip(itertools.pairwise(names), contracts, strict=True):
        clock.tick()
        net.link(up, down, Contract(sla=sla, disclose_subcontractors=disclosure))  # type: ignore[arg-type]
    net.drain_fifo()
    numbers = {"gc": net.open_ticket("gc")}
    for up, down in itertools.pairwise(names):
        clock.tick()
        delegation_id = net.delegate(up, numbers[up], down)
        net.drain_fifo()
        numbers[down] = net.peers[down].ticket_for(delegation_id)
        clock.tick()
        net.accept(down, numbers[down])
        net.drain_fifo()
    return Chain4(net, clock, numbers)


def test_a_breach_at_level_three_reaches_the_gc_once_with_its_level_and_company(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        c = build(net, clock)
        offered = c.delegation("l2", "out").offered_at
        assert c.sweep_all() == 0

        clock.tick(46 * 60)  # past 75 % of l3's 60-minute resolution target
        assert c.sweep_all() == 1
        assert c.sweep_all() == 0, "a warning is never emitted twice"
        clock.tick(60)
        assert c.sweep_all() == 0

        clock.tick(15 * 60)  # past 100 %
        assert c.sweep_all() == 1
        for _ in range(3):
            clock.tick(600)
            assert c.sweep_all() == 0

        gc_events = c.events("gc")
        assert [(e.kind, e.clock, e.level, e.partner, e.origin) for e in gc_events] == [
            ("warning", "resolution", 3, "l3", "received"),
            ("breach", "resolution", 3, "l3", "received"),
        ]
        assert gc_events[1].partner_label == "L3 Ltd"
        due = aware(gc_events[1].due_at)
        assert due == aware(offered) + timedelta(minutes=60)
        assert aware(gc_events[1].at) == due, "dated when the threshold was reached"
        assert [(e.kind, e.origin) for e in c.events("l2")] == [
            ("warning", "local"),
            ("breach", "local"),
        ]
        assert c.events("l3") == [], "the performer does not report on itself"

        gc = c.ticket("gc")
        assert gc.sla_state == "breached"
        with net.peers["gc"].session() as session:
            timeline = session.exec(
                select(TicketEvent).where(
                    TicketEvent.ticket_id == gc.id, col(TicketEvent.kind).startswith("sla_")
                )
            ).all()
            assert [(e.kind, e.level, e.source_account) for e in timeline] == [
                ("sla_warning", 3, "l3"),
                ("sla_breach", 3, "l3"),
            ]
            admin = User(username="x", password_hash="", role="admin")
            items, total = ticket_service.list_visible(
                session=session, account_id="gc", user=admin, sla="breached"
            )
            assert [t.number for t in items] == [gc.number] and total == 1
            _, at_risk = ticket_service.list_visible(
                session=session, account_id="gc", user=admin, sla="at_risk"
            )
            assert at_risk == 0

        # The GC's chain shows the breach at level 3, the levels above on time.
        tree = net.peers["gc"]
        with tree.session() as session:
            from account.delegations import service as delegation_service

            nodes = delegation_service.subtree_for(session=session, ticket=gc)
        level1 = nodes[0]
        level2 = level1["delegations"][0]
        level3 = level2["delegations"][0]
        assert (level1["sla_state"], level2["sla_state"], level3["sla_state"]) == (
            "ok",
            "ok",
            "breached",
        )
        assert parse_instant(level3["due"]["resolve_by"]) == due


def test_a_duplicated_event_is_recorded_once(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        c = build(net, clock)
        clock.tick(61 * 60)
        for name in ("l3", "l2"):
            c.sweep(name)
        # l2's events are in flight to l1: deliver each twice.
        ids = [m.message_id for m in net.network if m.type == "sla.event"]
        assert len(ids) == 2
        for message_id in ids:
            assert net.deliver(net.index(message_id=message_id), duplicate=True).outcome == (
                "applied"
            )
        outcomes = [net.deliver(net.index(message_id=i)).outcome for i in ids]
        assert outcomes == ["duplicate", "duplicate"]
        net.drain_fifo()
        assert len(c.events("l1")) == 2
        assert len(c.events("gc")) == 2


def test_anonymous_disclosure_hides_the_company_but_keeps_the_level(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        c = build(net, clock, disclosure="anonymous")
        clock.tick(61 * 60)
        c.sweep_all()
        [warning, breach] = c.events("gc")
        assert (breach.kind, breach.level, breach.partner) == ("breach", 3, None)
        assert breach.partner_label == "subcontractor, level 3"
        assert warning.partner is None


def test_a_node_down_across_the_deadline_emits_each_event_once_on_its_first_sweep(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        c = build(net, clock)
        offered = aware(c.delegation("l2", "out").offered_at)
        clock.tick(3 * 3600)  # nobody swept for three hours
        assert c.sweep_all() == 2
        assert c.sweep_all() == 0
        [warning, breach] = c.events("gc")
        assert aware(warning.at) == offered + timedelta(minutes=45)
        assert aware(breach.at) == offered + timedelta(minutes=60)


def test_a_hold_moves_the_deadline_on_both_ends_by_the_time_on_hold(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        c = build(net, clock)
        before = aware(c.delegation("l2", "out").resolve_due_at)  # type: ignore[arg-type]
        assert aware(c.delegation("l3", "in").resolve_due_at) == before  # type: ignore[arg-type]
        clock.tick(600)
        c.status("l3", "in_progress")
        clock.tick(60)
        c.status("l3", "on_hold")
        assert c.delegation("l2", "out").resolve_due_at is None, "paused: no due instant"
        clock.tick(30 * 60)
        c.status("l3", "in_progress")
        for name, role in (("l2", "out"), ("l3", "in")):
            due = c.delegation(name, role).resolve_due_at
            assert due is not None and aware(due) == before + timedelta(minutes=30)
        clock.tick(40 * 60)  # 81 minutes of wall time, 51 of them running: past 75 %, not 100 %
        assert c.sweep_all() == 1, "only the warning: the hold did not count"
        assert [e.kind for e in c.events("gc")] == ["warning"]


def test_a_rework_restarts_the_resolution_clock_and_may_warn_again(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        c = build(net, clock)
        clock.tick(50 * 60)
        assert c.sweep_all() == 1  # warning, cycle 0
        c.status("l3", "resolved")
        with net.peers["l2"].session() as session:
            from account.delegations import service as delegation_service

            d = session.exec(select(Delegation).where(Delegation.role == "out")).one()
            clock.tick(60)
            delegation_service.rework(
                session=session, identity=net.peers["l2"].identity, delegation=d,
                reason="still leaking", actor="disp",
            )  # fmt: skip
            session.commit()
        net.collect("l2")
        net.drain_fifo()
        assert c.delegation("l2", "out").sla_reworks
        assert c.delegation("l3", "in").sla_reworks
        clock.tick(46 * 60)
        assert c.sweep_all() == 1, "a new cycle warns again"
        kinds = [(e.kind, e.dedupe_key.rsplit(":", 1)[1]) for e in c.events("l2")]
        assert kinds == [("warning", "0"), ("warning", "1")]


def test_a_downstream_deadline_after_our_own_is_a_squeeze(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        build(net, clock, contracts=(LOOSE, policy(60, 120), policy(10, 600)))
        with net.peers["l2"].session() as session:
            ticket = session.exec(select(Ticket)).one()
            sla = sla_service.ticket_sla(session=session, ticket=ticket)
            squeezes = session.exec(
                select(TicketEvent).where(TicketEvent.kind == "sla_squeeze")
            ).all()
        assert sla["squeeze"] is True
        with net.peers["l2"].session() as session:
            from account.delegations import service as delegation_service

            [out] = delegation_service.outgoing(session=session, ticket=ticket)
            public = delegation_service.to_public(session=session, delegation=out)
        assert public["sla"]["squeeze"] is True, "the delegation answer warns of the squeeze"
        assert public["due"]["resolve_by"] is not None
        assert sla["resolution"]["target_minutes"] == 120
        assert [d["resolution"]["target_minutes"] for d in sla["delegations"]] == [600]
        assert len(squeezes) == 1 and squeezes[0].detail is not None
        assert squeezes[0].detail["partner"] == "l3"


def test_sla_metrics_count_events_tickets_by_state_and_due_checks(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from account.sla.metrics import SlaCollector

    with Net(tmp_path, db_backend) as net:
        c = build(net, clock)
        clock.tick(61 * 60)
        c.sweep_all()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SlaCollector(net.peers["gc"].engine))
        text = generate_latest(registry).decode()
    assert 'tix_sla_events_total{clock="resolution",kind="breach",origin="received"} 1.0' in text
    assert 'tix_sla_events_total{clock="resolution",kind="warning",origin="received"} 1.0' in text
    assert 'tix_sla_tickets{state="breached"} 1.0' in text
    assert "tix_sla_checks_due 0.0" in text
