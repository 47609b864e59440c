"""SLA sweep time and memory for one node with N open tickets (issue F3).

    .venv/bin/python benchmarks/sla_sweep.py --tickets 100000 --runs 3
    .venv/bin/python benchmarks/sla_sweep.py --tickets 100000 --runs 3 --database postgres
    .venv/bin/python benchmarks/sla_sweep.py --tickets 2000 --runs 1 --json results.json

**The node.** One node database (a SQLite file in a temporary directory, or with
``--database postgres`` a run-unique database on 127.0.0.1:5432 as user ``postgres``, dropped
afterwards; ``TIX_BENCH_POSTGRES_URL`` names another maintenance database) holds one account
with five downstream links and N open tickets, each with one outgoing delegation (role ``out``).
Every link's contract carries the same realistic SLA policy: Europe/Berlin, Monday to Friday
09:00-18:00, German public holidays 2025-2027, response and resolution targets per priority,
rework restarts the clock. The delegations' histories are mixed: offered and not yet accepted,
accepted (some late), on hold now, held earlier, reworked, resolved awaiting confirmation; so
the clocks are ``ok``, ``at_risk``, ``breached``, ``met`` and paused. Their stored deadlines,
state and ``sla_next_check_at`` are what ``refresh`` would store, and the node is in a steady
state: every threshold already reached has its ``SlaEventRecord``. Seeding uses SQLAlchemy core
``insert`` of dicts in batches (no ORM flush per row).

**What is measured** (each measurement phase in a fresh process, so its peak RSS is its own):

* *quiet sweep*: nothing is due (checks that real time would bring due within 30 minutes are
  pushed a day ahead first): one ``account.sla.flows.sweep``, as the scheduler calls it;
* *busy sweep*: ``--due-fraction`` of the delegations are due (their ``sla_next_check_at`` is
  set to now, and the event record of the last threshold they reached is missing, so each due
  delegation emits one ``sla.event``, as when a clock has just crossed 75 % or 100 %); the
  records and timeline lines a run creates are deleted before the next run;
* per sweep: wall time (median of ``--runs``), delegations evaluated per second, peak RSS of the
  process (``getrusage``) and the tracemalloc peak of one more, traced, sweep (tracing is slow,
  so that run is not timed);
* ``refresh``: µs per delegation of ``account.sla.service.refresh`` on a sample (its query
  included), of the clock evaluation ``clocks_of`` and of ``policy_of`` (the stored policy).

Bounded: at most 1 000 000 tickets and 20 runs; every sweep is bounded by ``flows.sweep``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import delete, event, func, insert, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from account.context import Identity
from account.db import create_tables, make_engine
from account.delegations.models import Delegation
from account.links.models import Contract, Link
from account.sla import flows
from account.sla import service as sla_service
from account.sla.clocks import Hold, Rework, SlaClocks, SlaHistory, SlaPolicy, evaluate
from account.sla.models import SlaEventRecord
from account.tickets.models import Ticket, TicketEvent
from exchange.clock import instant, utcnow
from exchange.signing import generate_key, kid_of, public_key_b64

MAX_TICKETS = 1_000_000
MAX_RUNS = 20
BATCH = 2_000  # tickets per insert batch (and per progress step)
QUIET_HORIZON = timedelta(minutes=30)
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# German public holidays (national ones, plus 24 and 31 December) around the benchmark's dates.
HOLIDAYS = [
    f"{year}-{day}"
    for year in (2025, 2026, 2027)
    for day in ("01-01", "05-01", "10-03", "12-24", "12-25", "12-26", "12-31")
] + [
    "2025-04-18", "2025-04-21", "2025-05-29", "2025-06-09",  # Good Friday, Easter Monday,
    "2026-04-03", "2026-04-06", "2026-05-14", "2026-05-25",  # Ascension, Whit Monday
    "2027-03-26", "2027-03-29", "2027-05-06", "2027-05-17",
]  # fmt: skip
WORKDAY = [["09:00", "18:00"]]
POLICY_DICT: dict[str, Any] = {
    "calendar": {
        "time_zone": "Europe/Berlin",
        "weekly": {day: WORKDAY for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": HOLIDAYS,
    },
    "targets": {
        "critical": {"response_minutes": 15, "resolution_minutes": 240},
        "high": {"response_minutes": 30, "resolution_minutes": 480},
        "normal": {"response_minutes": 120, "resolution_minutes": 1_440},
        "low": {"response_minutes": 480, "resolution_minutes": 4_320},
    },
    "rework": "restart",
}
POLICY = SlaPolicy.from_dict(POLICY_DICT)
PRIORITIES = ("critical", "high", "normal", "low")
PRIORITY_WEIGHTS = (5, 20, 55, 20)
# Real minutes per business minute, roughly: 45 open hours in a 168-hour week.
REAL_PER_BUSINESS = 168 / 45
PARTNERS = 5


# --- the node's database ----------------------------------------------------------------------


@contextmanager
def node_database(kind: str) -> Iterator[str]:
    """A SQLAlchemy URL of an empty node database; removed or dropped on exit."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tix-bench-sla-") as tmp:
            yield f"sqlite:///{tmp}/node.db"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database {kind!r}")
    admin = os.environ.get("TIX_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    name = f"tix_bench_sla_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def identity_of(account_id: str, raw_key: bytes) -> Identity:
    key = Ed25519PrivateKey.from_private_bytes(raw_key)
    return Identity(account_id=account_id, label="Bench GC", key=key)


# --- seeding --------------------------------------------------------------------------------


@dataclass
class SeedStats:
    tickets: int = 0
    delegations: int = 0
    event_records: int = 0
    seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


def _links(account_id: str) -> list[dict[str, Any]]:
    contract = Contract.model_validate({"sla": POLICY_DICT}).model_dump()
    rows = []
    for n in range(1, PARTNERS + 1):
        key = generate_key()
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "account_id": account_id,
                "peer_account": f"bench-partner-{n}",
                "peer_label": f"Partner {n} GmbH",
                "direction": "downstream",
                "state": "active",
                "peer_public_key": public_key_b64(key),
                "peer_kid": kid_of(key.public_key()),
                "contract": contract,
            }
        )
    return rows


def _between(rng: random.Random, a: datetime, b: datetime) -> datetime:
    """A random instant in [a, b], to the millisecond (what the wire carries)."""
    moment = a + (b - a) * rng.random()
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _history(rng: random.Random, now: datetime, priority: str) -> tuple[str, SlaHistory]:
    """A realistic delegation history as of ``now``: (kind, history)."""
    targets = POLICY.targets[priority]  # type: ignore[index]
    assert targets.response_minutes and targets.resolution_minutes
    age = timedelta(minutes=targets.resolution_minutes * REAL_PER_BUSINESS * 0.9 * rng.random())
    offered = now - age
    offered = offered.replace(microsecond=offered.microsecond // 1000 * 1000)
    # Partners answer in business time: most within the target, some late.
    delay = timedelta(minutes=targets.response_minutes * 1.1 * rng.random())
    accepted = POLICY.calendar.add_business_time(offered, delay)
    accepted = accepted.replace(microsecond=accepted.microsecond // 1000 * 1000)
    if rng.random() < 0.15 or accepted >= now:
        # Offers waiting for an answer are young: most are answered within the target.
        wait = timedelta(minutes=targets.response_minutes * 1.2 * rng.random())
        waiting = now - wait
        waiting = waiting.replace(microsecond=waiting.microsecond // 1000 * 1000)
        return "offered", SlaHistory(offered_at=waiting)
    r = rng.random()
    if r < 0.10:
        hold = Hold(_between(rng, accepted, now), None)
        return "on_hold", SlaHistory(offered_at=offered, accepted_at=accepted, holds=(hold,))
    if r < 0.25:
        start = _between(rng, accepted, now)
        hold = Hold(start, _between(rng, start, now))
        return "held_before", SlaHistory(offered_at=offered, accepted_at=accepted, holds=(hold,))
    if r < 0.30:
        resolved = _between(rng, accepted, now)
        rework = Rework(resolved, _between(rng, resolved, now))
        return "reworked", SlaHistory(offered_at=offered, accepted_at=accepted, reworks=(rework,))
    if r < 0.35:
        resolved = _between(rng, accepted, now)
        return "resolved", SlaHistory(
            offered_at=offered, accepted_at=accepted, resolved_at=resolved
        )
    return "in_progress", SlaHistory(offered_at=offered, accepted_at=accepted)


_TICKET_STATUS = {
    "offered": "open",
    "on_hold": "on_hold",
    "resolved": "resolved",
}
_DELEGATION_STATE = {"offered": "offered", "resolved": "resolved"}


def _rows(
    rng: random.Random,
    now: datetime,
    account_id: str,
    links: Sequence[dict[str, Any]],
    number: int,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], str, str]:
    """One ticket, its outgoing delegation and the event records of thresholds it reached."""
    priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
    kind, history = _history(rng, now, priority)
    clocks = evaluate(policy=POLICY, priority=priority, history=history, now=now)  # type: ignore[arg-type]
    listed = [c for c in (clocks.response, clocks.resolution) if c is not None]
    state = sla_service.worst(c.state for c in listed) if listed else "none"
    link = links[number % len(links)]
    delegation_id = str(uuid.uuid4())
    ticket = {
        "id": number,
        "number": f"BENCH-{number:07d}",
        "account_id": account_id,
        "title": f"Bench ticket {number}",
        "priority": priority,
        "status": _TICKET_STATUS.get(kind, "in_progress"),
        "chain_id": str(uuid.uuid4()),
        "depth": 0,
        "created_at": history.offered_at - timedelta(minutes=5),
        "updated_at": now,
        "resolved_at": history.resolved_at,
        "sla_state": state,
    }
    delegation = {
        "id": number,
        "delegation_id": delegation_id,
        "account_id": account_id,
        "role": "out",
        "link_id": link["id"],
        "peer_account": link["peer_account"],
        "ticket_id": number,
        "state": _DELEGATION_STATE.get(kind, "in_progress"),
        "remote_status": _TICKET_STATUS.get(kind, "in_progress"),
        "remote_ref": f"P-{number}",
        "subtree": [],
        "offered_at": history.offered_at,
        "accepted_at": history.accepted_at,
        "resolved_at": history.resolved_at,
        "updated_at": now,
        "sla_policy": POLICY_DICT,
        "sla_holds": [[instant(h.start), instant(h.end) if h.end else None] for h in history.holds],
        "sla_reworks": [[instant(r.resolved_at), instant(r.reworked_at)] for r in history.reworks],
        "response_due_at": clocks.response.due_at if clocks.response else None,
        "resolve_due_at": clocks.resolution.due_at if clocks.resolution else None,
        "sla_state": state,
        "sla_next_check_at": clocks.next_change_at,
    }
    events = _event_rows(account_id, number, delegation_id, link, clocks, len(history.reworks), now)
    return ticket, delegation, events, kind, state


def _event_rows(
    account_id: str,
    ticket_id: int,
    delegation_id: str,
    link: dict[str, Any],
    clocks: SlaClocks,
    reworks: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Records of every threshold reached so far, as ``flows._emit`` would have stored them."""
    rows = []
    for clock in (clocks.response, clocks.resolution):
        if clock is None:
            continue
        cycle = reworks if clock.name == "resolution" and POLICY.rework == "restart" else 0
        for kind in clock.reached:
            threshold = clock.warn_at if kind == "warning" else clock.due_at
            rows.append(
                {
                    "account_id": account_id,
                    "event_id": str(uuid.uuid4()),
                    "dedupe_key": f"{delegation_id}:{clock.name}:{kind}:{cycle}",
                    "ticket_id": ticket_id,
                    "delegation_id": delegation_id,
                    "chain_delegation_id": delegation_id,
                    "origin": "local",
                    "kind": kind,
                    "clock": clock.name,
                    "level": 1,
                    "partner": link["peer_account"],
                    "partner_label": link["peer_label"],
                    "due_at": clock.due_at or threshold or now,
                    "at": min(threshold, now) if threshold else now,
                    "created_at": now,
                }
            )
    return rows


def seed(
    engine: Engine, account_id: str, tickets: int, *, rng_seed: int = 1, progress: bool = False
) -> SeedStats:
    """Create the tables and N open tickets with one outgoing delegation each, in batches."""
    tickets = max(1, min(tickets, MAX_TICKETS))
    started = time.perf_counter()
    create_tables(engine)
    rng = random.Random(rng_seed)  # noqa: S311  (reproducible data, not security)
    now = utcnow()
    links = _links(account_id)
    stats = SeedStats()
    with engine.begin() as conn:
        conn.execute(insert(Link), links)
    bar = Progress(transient=True) if progress else nullcontext()
    with bar:
        task = bar.add_task("seeding", total=tickets) if isinstance(bar, Progress) else None
        for first in range(1, tickets + 1, BATCH):
            ticket_rows, delegation_rows, event_rows = [], [], []
            for number in range(first, min(first + BATCH, tickets + 1)):
                ticket, delegation, events, kind, state = _rows(rng, now, account_id, links, number)
                ticket_rows.append(ticket)
                delegation_rows.append(delegation)
                event_rows.extend(events)
                stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
                stats.states[state] = stats.states.get(state, 0) + 1
            with engine.begin() as conn:
                conn.execute(insert(Ticket), ticket_rows)
                conn.execute(insert(Delegation), delegation_rows)
                if event_rows:
                    conn.execute(insert(SlaEventRecord), event_rows)
            stats.tickets += len(ticket_rows)
            stats.delegations += len(delegation_rows)
            stats.event_records += len(event_rows)
            if isinstance(bar, Progress) and task is not None:
                bar.update(task, advance=len(ticket_rows))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Explicit ids were inserted: move the sequences past them; and let the planner
            # know the tables (autovacuum would ANALYZE them shortly after such a load).
            for table in ("ticket", "delegation"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :n)"),
                    {"n": stats.tickets},
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    stats.seconds = time.perf_counter() - started
    return stats


def choose_busy(engine: Engine, fraction: float, *, rng_seed: int = 2) -> list[int]:
    """Pick the delegations that will be due, and remove their last reached event record.

    Each of them then has one threshold reached but not recorded: the state of a delegation
    whose clock has just crossed 75 % or 100 %. Returns their row ids.
    """
    with engine.begin() as conn:
        total = conn.execute(select(func.count()).select_from(Delegation)).scalar_one()
        latest = conn.execute(
            select(Delegation.id, func.max(SlaEventRecord.id))  # type: ignore[call-overload]
            .join(SlaEventRecord, SlaEventRecord.delegation_id == Delegation.delegation_id)
            .group_by(Delegation.id)
        ).all()
        wanted = min(len(latest), max(1, round(total * fraction)))
        rng = random.Random(rng_seed)  # noqa: S311
        chosen = sorted(rng.sample(latest, wanted))
        record_ids = [record for _, record in chosen]
        for i in range(0, len(record_ids), 500):
            conn.execute(
                delete(SlaEventRecord).where(col(SlaEventRecord.id).in_(record_ids[i : i + 500]))
            )
    return [delegation for delegation, _ in chosen]


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Baseline:
    """Ids above which rows were made by a sweep (deleted before the next run)."""

    event_record: int
    ticket_event: int


def baseline(engine: Engine) -> Baseline:
    with engine.begin() as conn:
        records = conn.execute(select(func.max(SlaEventRecord.id))).scalar_one()
        timeline = conn.execute(select(func.max(TicketEvent.id))).scalar_one()
    return Baseline(event_record=records or 0, ticket_event=timeline or 0)


def prepare(engine: Engine, base: Baseline, busy: Sequence[int]) -> int:
    """Undo the last run and make exactly ``busy`` due; returns how many checks were due."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(delete(SlaEventRecord).where(col(SlaEventRecord.id) > base.event_record))
        conn.execute(delete(TicketEvent).where(col(TicketEvent.id) > base.ticket_event))
        # Checks that real time brings due during the benchmark are pushed a day ahead.
        conn.execute(
            update(Delegation)
            .where(col(Delegation.sla_next_check_at) <= now + QUIET_HORIZON)
            .values(sla_next_check_at=now + timedelta(days=1))
        )
        for i in range(0, len(busy), 500):
            conn.execute(
                update(Delegation)
                .where(Delegation.id.in_(busy[i : i + 500]))  # type: ignore[union-attr]
                .values(sla_next_check_at=now - timedelta(seconds=1))
            )
        return int(
            conn.execute(
                select(func.count())
                .select_from(Delegation)
                .where(col(Delegation.sla_next_check_at) <= utcnow())
            ).scalar_one()
        )


def _rss_mb() -> float:
    """Current resident set size in MiB (Linux), 0 elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_sweeps(
    engine: Engine, identity: Identity, busy: Sequence[int], runs: int, base: Baseline
) -> dict[str, Any]:
    """Time ``runs`` sweeps and trace one more; ``busy`` empty is the quiet sweep."""
    identities = {identity.account_id: identity}
    rss_before, peak_before = _rss_mb(), _max_rss_mb()
    times, cpu, due_counts, events, checked, statements = [], [], [], [], [], []
    issued = [0]

    def count(*_: Any) -> None:
        issued[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(max(1, min(runs, MAX_RUNS))):
            due = prepare(engine, base, busy)
            issued[0] = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            swept, sent = flows.sweep(engine, identities)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            statements.append(issued[0])
            due_counts.append(due)
            events.append(sent)
            checked.append(swept)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    peak_rss = _max_rss_mb()
    prepare(engine, base, busy)
    tracemalloc.start()
    try:
        flows.sweep(engine, identities)
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with engine.connect() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(Delegation)
            .where(col(Delegation.sla_next_check_at) <= utcnow())
        ).scalar_one()
    median = statistics.median(times)
    due_median = statistics.median(due_counts)
    return {
        "runs": len(times),
        "seconds": times,
        "median_seconds": median,
        "cpu_seconds": cpu,
        "median_cpu_seconds": statistics.median(cpu),
        "due": due_median,
        "events": events,
        "sweep_checked": checked,
        "statements": statements,
        "statements_per_due": statistics.median(statements) / due_median if due_median else None,
        "due_after": int(left),
        "evaluated_per_s": due_median / median if due_median and median else None,
        "ms_per_due": 1000 * median / due_median if due_median else None,
        "rss_before_mb": rss_before,
        "peak_rss_before_mb": peak_before,
        "peak_rss_mb": peak_rss,
        "traced_peak_mb": traced_peak / 2**20,
    }


def measure_refresh(engine: Engine, sample: int = 2_000, repeat: int = 3) -> dict[str, float]:
    """µs per delegation: ``refresh`` (with its query), ``clocks_of`` and ``policy_of`` alone."""
    with Session(engine) as session:
        rows = session.exec(
            sm_select(Delegation, Ticket.priority)
            .join(Ticket, Ticket.id == Delegation.ticket_id)  # type: ignore[arg-type]
            .order_by(col(Delegation.id))
            .limit(sample)
        ).all()
        now = utcnow()
        refresh_us, clocks_us, parse_us = [], [], []
        for _ in range(repeat):
            started = time.perf_counter()
            for d, priority in rows:
                sla_service.refresh(session=session, delegation=d, priority=priority, now=now)
            refresh_us.append((time.perf_counter() - started) / len(rows) * 1e6)
            started = time.perf_counter()
            for d, priority in rows:
                sla_service.clocks_of(d, priority, now)
            clocks_us.append((time.perf_counter() - started) / len(rows) * 1e6)
            started = time.perf_counter()
            for d, _ in rows:
                sla_service.policy_of(d)
            parse_us.append((time.perf_counter() - started) / len(rows) * 1e6)
        session.rollback()
    return {
        "sample": float(len(rows)),
        "refresh_us": statistics.median(refresh_us),
        "clocks_of_us": statistics.median(clocks_us),
        "policy_of_us": statistics.median(parse_us),
    }


def query_plan(engine: Engine, account_id: str) -> list[str]:
    """How the database runs the sweep's query for due checks (it must not scan the account)."""
    due = (
        "SELECT id FROM delegation WHERE account_id IN (:account)"
        " AND sla_next_check_at IS NOT NULL AND sla_next_check_at <= :now"
        " ORDER BY sla_next_check_at LIMIT 500"
    )
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.execute(text(explain + due), {"now": utcnow(), "account": account_id})
        return [str(row[-1]) for row in rows]


def phase(
    url: str, account_id: str, raw_key: bytes, name: str, busy: list[int], runs: int
) -> dict[str, Any]:
    """One measurement phase in this (fresh) process: ``quiet``, ``busy`` or ``refresh``."""
    engine = make_engine(url)
    try:
        if name == "refresh":
            return measure_refresh(engine)
        base = baseline(engine)
        return measure_sweeps(engine, identity_of(account_id, raw_key), busy, runs, base)
    finally:
        engine.dispose()


def in_fresh_process(*args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(phase, *args).result(timeout=3_600)


# --- the command ----------------------------------------------------------------------------


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    key = generate_key()
    account_id = f"bench-gc-{uuid.uuid4().hex[:6]}"
    identity = Identity(account_id=account_id, label="Bench GC", key=key)
    with node_database(args.database) as url:
        engine = make_engine(url)
        try:
            stats = seed(engine, identity.account_id, args.tickets, progress=True)
            console.print(
                f"seeded {stats.tickets} tickets, {stats.delegations} delegations and "
                f"{stats.event_records} event records in {stats.seconds:.1f}s"
            )
            plan = query_plan(engine, account_id)
            busy = choose_busy(engine, args.due_fraction)
        finally:
            engine.dispose()
        raw = key_bytes(key)
        results: dict[str, Any] = {
            "database": args.database,
            "tickets": stats.tickets,
            "due_fraction": args.due_fraction,
            "load_average_before": os.getloadavg(),
            "seed": asdict(stats),
            "due_query_plan": plan,
        }
        for name, due in (("quiet", []), ("busy", busy), ("refresh", [])):
            console.print(f"measuring: {name}")
            results[name] = in_fresh_process(url, account_id, raw, name, due, args.runs)
        results["load_average_after"] = os.getloadavg()
    return results


def table(results: dict[str, Any]) -> Table:
    quiet, busy, refresh = results["quiet"], results["busy"], results["refresh"]
    out = Table(
        title=(
            f"SLA sweep, {results['tickets']:,} open tickets, {results['database']}, "
            f"median of {busy['runs']} runs"
        )
    )
    out.add_column("measure")
    out.add_column("quiet sweep", justify="right")
    out.add_column("busy sweep", justify="right")

    def rate(r: dict[str, Any]) -> str:
        return f"{r['evaluated_per_s']:,.0f}" if r["evaluated_per_s"] else "-"

    out.add_row("due delegations", f"{quiet['due']:,.0f}", f"{busy['due']:,.0f}")
    out.add_row(
        "wall time per sweep", f"{quiet['median_seconds'] * 1e3:,.1f} ms",
        f"{busy['median_seconds'] * 1e3:,.1f} ms",
    )  # fmt: skip
    out.add_row("evaluated per second", rate(quiet), rate(busy))
    out.add_row(
        "CPU time per sweep",
        f"{quiet['median_cpu_seconds'] * 1e3:,.1f} ms",
        f"{busy['median_cpu_seconds'] * 1e3:,.1f} ms",
    )
    out.add_row(
        "ms per due delegation", "-", f"{busy['ms_per_due']:.2f}" if busy["ms_per_due"] else "-"
    )
    out.add_row(
        "SQL statements (per due)",
        f"{statistics.median(quiet['statements']):,.0f}",
        f"{statistics.median(busy['statements']):,.0f} ({busy['statements_per_due']:.1f})",
    )
    out.add_row("events emitted", str(quiet["events"][0]), str(busy["events"][0]))
    out.add_row(
        "RSS now / peak before -> peak after",
        f"{quiet['rss_before_mb']:.0f} / {quiet['peak_rss_before_mb']:.0f} -> "
        f"{quiet['peak_rss_mb']:.0f} MiB",
        f"{busy['rss_before_mb']:.0f} / {busy['peak_rss_before_mb']:.0f} -> "
        f"{busy['peak_rss_mb']:.0f} MiB",
    )
    out.add_row(
        "tracemalloc peak",
        f"{quiet['traced_peak_mb']:.2f} MiB",
        f"{busy['traced_peak_mb']:.2f} MiB",
    )
    out.add_row("refresh per delegation", f"{refresh['refresh_us']:.0f} µs", "")
    out.add_row("  of which clocks_of", f"{refresh['clocks_of_us']:.0f} µs", "")
    out.add_row("  of which policy_of", f"{refresh['policy_of_us']:.0f} µs", "")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--due-fraction", type=float, default=0.01)
    parser.add_argument(
        "--json", metavar="FILE", help="also write the results as JSON (- for stdout)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.due_fraction <= 1:
        parser.error("--due-fraction is in (0, 1]")
    args.tickets = max(1, min(args.tickets, MAX_TICKETS))
    args.runs = max(1, min(args.runs, MAX_RUNS))
    console = Console(stderr=args.json == "-")
    # A plain kill still removes the temporary files and drops the PostgreSQL database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC)
    results = run(args, console)
    results["started_at"] = instant(started)
    results["command"] = " ".join(["benchmarks/sla_sweep.py", *(argv or sys.argv[1:])])
    console.print(table(results))
    console.print("due query plan: " + " | ".join(results["due_query_plan"]))
    console.print(
        "load average before / after: "
        f"{results['load_average_before'][0]:.1f} / {results['load_average_after'][0]:.1f}"
    )
    if args.json == "-":
        print(json.dumps(results, indent=2, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
