"""The fault scenarios: one fault each, injected while a ticket load crosses a four-level chain.

``run(scenario, broker, workdir, tickets=N, long=False)`` builds a fresh chain on the private
``broker``, starts the load, lets the scenario inject its fault and heal it, waits for the load
to finish, drains (bounded: every outbox sent and every inbox on the broker empty), snapshots
every node's database and runs the oracle (``tests.faults.oracle``). ``long=True`` is the
operator's variant (the 60 s outage, the default 5-minute skew window); CI uses short ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.faults.chain import LEVELS, Chain, Load, read_db
from tests.faults.oracle import Verdict, check, last_rejection_ids, snapshot
from tests.support.nodes import delete_queues, eventually
from tests.support.private_broker import PrivateBroker

DUPLICATE = 'tix_messages_in_total{outcome="duplicate"}'
DEFAULT_WINDOW = 100


@dataclass
class Context:
    """What an ``inject`` function works with; it calls ``heal()`` when its fault is over."""

    chain: Chain
    load: Load
    broker: PrivateBroker
    long: bool
    healed_at: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def workdir(self) -> Path:
        return self.chain.workdir

    def heal(self) -> None:
        self.healed_at = time.monotonic()


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    inject: Callable[[Context], int]  # returns how many faults it injected
    expected_reasons: frozenset[str] = frozenset()
    needs_transport_duplicates: bool = False
    before_load: Callable[[Context], None] | None = None
    # Tickets in flight at once (None: the driver's default). The partner-offline run needs
    # every ticket in flight, since none can finish while the leaf is down.
    window: int | None = None


@dataclass
class Result:
    scenario: str
    fault: str
    injected: int
    tickets: int
    verdict: Verdict
    converge_seconds: float
    total_seconds: float
    notes: list[str]

    @property
    def ok(self) -> bool:
        scenario = SCENARIOS[self.scenario]
        if scenario.needs_transport_duplicates and self.verdict.transport_duplicates == 0:
            return False
        if scenario.expected_reasons and self.verdict.expected_rejections == 0:
            return False
        return self.verdict.ok and self.injected > 0


SKEW_WINDOW_CI = 10  # seconds of allowed skew in the CI variant (TIX_MAX_CLOCK_SKEW_SECONDS)


def chain_env(workdir: Path, long: bool) -> dict[str, dict[str, str]]:
    """Settings of the fault chain: chaos switched by a file, l2's clock by an offset file."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "chaos-spec").write_text("")
    (workdir / "l2-clock-offset").write_text("0")
    window = {} if long else {"TIX_MAX_CLOCK_SKEW_SECONDS": str(SKEW_WINDOW_CI)}
    env = {}
    for i, name in enumerate(LEVELS):
        env[name] = window | {
            "TIX_CHAOS_FILE": str(workdir / "chaos-spec"),
            "TIX_CHAOS_SEED": str(i + 1),
            "TIX_CHAOS_LOG": str(workdir / f"chaos-{name}.log"),
        }
    env["l2"]["TIX_CLOCK_OFFSET_FILE"] = str(workdir / "l2-clock-offset")
    return env


def build_chain(
    broker: PrivateBroker, workdir: Path, *, long: bool = False, backend: str = "sqlite"
) -> Chain:
    """A fresh four-level chain ready for every scenario, on databases of ``backend``."""
    return Chain.build(broker, workdir, env=chain_env(workdir, long), backend=backend)


def run(
    scenario: Scenario,
    chain: Chain,
    *,
    tickets: int,
    long: bool = False,
    finish_timeout: float | None = None,
) -> Result:
    """Run one scenario on ``chain`` (which may have run others before); see the module doc."""
    began = time.monotonic()
    load = Load(chain, tickets, window=scenario.window or DEFAULT_WINDOW)
    ctx = Context(chain, load, chain.broker, long)
    before = _duplicates_seen(chain)
    rejected_before = last_rejection_ids([(n.account_id, chain.db(n)) for n in chain.nodes])
    try:
        if scenario.before_load is not None:
            scenario.before_load(ctx)
        load.start()
        injected = scenario.inject(ctx)
        if ctx.healed_at is None:
            ctx.heal()
        try:
            load.wait_finished(timeout=finish_timeout or 120 + tickets * 2.0)
            load.stop()
            drain(chain)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnose(chain, load)}") from exc
        assert ctx.healed_at is not None
        converged = time.monotonic() - ctx.healed_at
        after = _duplicates_seen(chain)
        duplicates = sum(
            count - before.get(key, 0) if key in before else count for key, count in after.items()
        )
        snapshots = [snapshot(n.account_id, chain.db(n)) for n in chain.nodes]
        verdict = check(
            snapshots,
            load.gc_numbers,
            transport_duplicates=int(duplicates),
            expected_reasons=scenario.expected_reasons,
            rejected_before=rejected_before,
        )
        return Result(
            scenario.name,
            scenario.fault,
            injected,
            tickets,
            verdict,
            converged,
            time.monotonic() - began,
            ctx.notes,
        )
    finally:
        load.stop()
        _set_chaos(chain, "")
        _set_offset(chain, 0)


def run_fresh(
    scenario: Scenario, broker: PrivateBroker, workdir: Path, *, tickets: int, long: bool = False
) -> Result:
    """Run one scenario on a chain of its own, then stop it and remove its queues."""
    chain = build_chain(broker, workdir, long=long)
    try:
        return run(scenario, chain, tickets=tickets, long=long)
    finally:
        chain.close()
        delete_queues(broker.url, [n.account_id for n in chain.nodes])


def drain(chain: Chain, timeout: float = 120.0) -> None:
    """Wait (bounded) until every outbox row is sent and every inbox on the broker is empty."""

    def quiet() -> bool:
        return chain.outbox_pending() == 0 and chain.queued() == 0

    eventually(quiet, timeout=timeout, interval=0.3, what="outboxes and inboxes drained")
    time.sleep(0.5)  # a message taken just before the last look settles
    eventually(quiet, timeout=timeout, interval=0.3, what="outboxes and inboxes drained")


def diagnose(chain: Chain, load: Load) -> str:
    """What is stuck where: for the message of a failed scenario."""
    lines = [f"driver errors (last 5): {load.errors[-5:]}"]
    with contextlib.suppress(Exception):
        lines.append(
            chain.broker.ctl(
                "list_queues", "name", "messages", "messages_unacknowledged", "consumers"
            )
        )
    for node in chain.nodes:
        with contextlib.suppress(Exception), read_db(chain.db(node)) as conn:
            stuck = conn.execute(
                "SELECT to_account, type, state, tries, last_error FROM outboxmessage"
                " WHERE state != 'sent' LIMIT 5"
            ).fetchall()
            lines.append(f"{node.account_id} unsent: {[tuple(r) for r in stuck]}")
        with contextlib.suppress(Exception):
            lines.append(f"{node.account_id} readyz: {node.client.get('/readyz').text}")
        lines.append(f"--- {node.account_id} log ---\n{node.log_tail(15)}")
    return "\n".join(lines)


def _duplicates_seen(chain: Chain) -> dict[tuple[str, int], float]:
    """Inbox dedupe hits per (node, process start): counters restart with the process."""
    seen = {}
    for node in chain.nodes:
        with contextlib.suppress(Exception):  # a node that is down has no counters to read
            seen[(node.account_id, node.starts)] = node.metric(DUPLICATE)
    return seen


def _set_chaos(chain: Chain, spec: str) -> None:
    (chain.workdir / "chaos-spec").write_text(spec)
    time.sleep(0.5)  # nodes re-read the file at most every 0.2 s


def _set_offset(chain: Chain, seconds: float) -> None:
    (chain.workdir / "l2-clock-offset").write_text(str(seconds))
    time.sleep(0.5)  # the node reads the file at most every 0.2 s


# -- the faults ------------------------------------------------------------------------------


def _broker_restart(ctx: Context) -> int:
    ctx.load.wait_progress(0.3)
    ctx.broker.stop_app()
    time.sleep(3)
    ctx.broker.start_app()
    ctx.heal()
    return 1


def _broker_outage(ctx: Context) -> int:
    ctx.load.wait_progress(0.3)
    ctx.broker.stop_app()
    down = 60.0 if ctx.long else 6.0
    time.sleep(down)
    ctx.notes.append(f"broker down {down:.0f} s")
    ctx.broker.start_app()
    ctx.heal()
    return 1


def _kill_middle(ctx: Context) -> int:
    kills = 0
    plan = (("l1", 0.25), ("l2", 0.5)) if ctx.long else (("l1", 0.3),)
    for name, at in plan:
        ctx.load.wait_progress(at)
        ctx.chain.by_name(name).kill()
        kills += 1
        time.sleep(1.0)
        ctx.chain.restart(name)
    ctx.heal()
    return kills


def _kill_relay(ctx: Context) -> int:
    """SIGKILL middle nodes inside their relays, around the publish, while traffic flows."""
    kills = 0
    plan = [("l1", "after_confirm_before_mark_sent", 0.2)]
    if ctx.long:
        plan.append(("l2", "after_commit_before_publish", 0.45))
    for name, point, at in plan:
        ctx.load.wait_progress(at)
        node = ctx.chain.by_name(name)
        node.stop()
        env = {"FI_CRASH_AT": point, "FI_CRASH_SKIP": "3"}
        # It is meant to die at the crash point, which can come before it answers or in the
        # middle of the admin login that follows (the relay drains within milliseconds).
        with contextlib.suppress(AssertionError, httpx.HTTPError):
            ctx.chain.restart(name, env)
        code = node.wait_exit(timeout=120)
        if code == -9:
            kills += 1
        ctx.notes.append(f"{name} killed at {point} (exit {code})")
        ctx.chain.restart(name)
    ctx.heal()
    return kills


def _chaos_lines(workdir: Path, kind: str) -> int:
    total = 0
    for path in workdir.glob("chaos-*.log"):
        total += sum(1 for line in path.read_text().splitlines() if line.startswith(kind))
    return total


def _chaos(kind: str, spec: str) -> Callable[[Context], int]:
    def inject(ctx: Context) -> int:
        before = _chaos_lines(ctx.workdir, kind)
        _set_chaos(ctx.chain, spec)
        ctx.load.wait_finished(timeout=120 + ctx.load.total * 2.0)
        _set_chaos(ctx.chain, "")
        # A held envelope lives only in its node's memory: the drain waits until each is out.
        eventually(
            lambda: _chaos_lines(ctx.workdir, "hold") == _chaos_lines(ctx.workdir, "release"),
            timeout=60,
            what="every held envelope released",
        )
        return _chaos_lines(ctx.workdir, kind) - before

    return inject


def _stop_leaf(ctx: Context) -> None:
    ctx.chain.by_name("l3").stop()


def _partner_offline(ctx: Context) -> int:
    """The leaf is down while every ticket is offered to it; then it starts and catches up."""
    l2 = ctx.chain.by_name("l2")

    def offered() -> int:
        with read_db(ctx.chain.db(l2)) as conn:
            row = conn.execute("SELECT count(*) FROM delegation WHERE role='out'").fetchone()
        return int(row[0])

    offered_before = offered()

    def all_offered_to_leaf() -> bool:
        return offered() - offered_before >= ctx.load.total

    eventually(
        all_offered_to_leaf, timeout=120 + ctx.load.total * 2.0, what="every offer at the leaf"
    )
    eventually(lambda: ctx.chain.outbox_pending() == 0, timeout=120, what="upper outboxes sent")
    ctx.notes.append(f"{ctx.load.total} offers waited for the leaf")
    ctx.chain.restart("l3")
    ctx.heal()
    return 1


def _db_locked(ctx: Context) -> int:
    """Lock l1's database from a second connection: SQLite ``BEGIN EXCLUSIVE``; PostgreSQL
    ``LOCK TABLE`` of the tables every message and request writes (RELIABILITY FT11)."""
    hold = 40.0 if ctx.long else 5.0
    ctx.load.wait_progress(0.3)
    url = ctx.chain.db(ctx.chain.by_name("l1"))
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(hold)
            conn.rollback()
        finally:
            conn.close()
    else:
        libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq) as pg:
            pg.execute("LOCK TABLE ticket, inboxmessage, outboxmessage IN ACCESS EXCLUSIVE MODE")
            time.sleep(hold)
            pg.rollback()
    ctx.notes.append(f"l1's database locked {hold:.0f} s")
    ctx.heal()
    return 1


def _window(ctx: Context) -> int:
    return 300 if ctx.long else SKEW_WINDOW_CI


def _skew_within(ctx: Context) -> int:
    offset = _window(ctx) * 0.6
    _set_offset(ctx.chain, offset)
    ctx.notes.append(f"l2 {offset:.0f} s ahead (window {_window(ctx)} s)")
    ctx.load.wait_finished(timeout=120 + ctx.load.total * 2.0)
    _set_offset(ctx.chain, 0)
    return 1


def _skew_beyond(ctx: Context) -> int:
    """l2 runs past the window: its messages are refused, then replayed once inside it."""
    window = _window(ctx)
    offset = window + (30 if ctx.long else 5)
    l1, l3 = ctx.chain.by_name("l1"), ctx.chain.by_name("l3")
    before = len(l1.rejected()) + len(l3.rejected())
    _set_offset(ctx.chain, offset)
    # Progress stalls while l2 is refused (nothing reaches the leaf), so wait for refusals.
    eventually(
        lambda: len(l1.rejected()) + len(l3.rejected()) >= before + min(ctx.load.total, 10),
        timeout=120,
        what="l2's messages refused",
    )
    time.sleep(2)
    _set_offset(ctx.chain, 0)
    corrected = time.monotonic()
    # The refused envelopes wait in l1's and l3's dead-letter queues (reason future_sent_at).
    # The last ones were signed just before the correction, so they come inside the window
    # (offset - window) seconds after it; then the operator replays them. A replay that comes
    # too early for some is refused again and dead-lettered again: replay until none is left.
    time.sleep(max(0.0, offset - window + 2 - (time.monotonic() - corrected)))
    replayed = 0
    for _ in range(5):
        moved = _replay(ctx.broker.url, [l1.account_id, l3.account_id])
        replayed += moved
        if moved == 0:
            break
        time.sleep(3)
    refused = len(l1.rejected()) + len(l3.rejected()) - before
    ctx.notes.append(
        f"l2 {offset} s ahead (window {window} s): {refused} refused (future_sent_at),"
        f" {replayed} replayed from the dead-letter queues"
    )
    ctx.heal()
    return 1


def _replay(url: str, accounts: list[str]) -> int:
    from exchange.amqp import AmqpTransport

    async def go() -> int:
        transport = AmqpTransport(url)
        await transport.connect()
        try:
            return sum([await transport.replay_dead(a, limit=100_000) for a in accounts])
        finally:
            await transport.close()

    return asyncio.run(go())


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("broker-restart", "rabbitmqctl stop_app; 3 s; start_app", _broker_restart),
        Scenario("broker-outage", "broker down 6 s (60 s long); start_app", _broker_outage),
        Scenario("kill-middle", "SIGKILL l1 (long: then l2) mid-delegation; restart", _kill_middle),
        Scenario(
            "kill-relay",
            "SIGKILL l1 after confirm before mark (long: l2 before publish)",
            _kill_relay,
        ),
        Scenario(
            "duplicate",
            "every node publishes 20 % of its envelopes twice",
            _chaos("dup", "dup:0.2"),
            needs_transport_duplicates=True,
        ),
        Scenario(
            "reorder",
            "every node holds 20 % of its envelopes back behind 3 later ones",
            _chaos("hold", "hold:0.2:3"),
        ),
        Scenario(
            "partner-offline",
            "the leaf is down while every ticket is offered to it, then catches up",
            _partner_offline,
            before_load=_stop_leaf,
            window=1_000_000,
        ),
        Scenario("db-locked", "BEGIN EXCLUSIVE on l1's SQLite for 5 s (40 s long)", _db_locked),
        Scenario("skew-within", "l2's clock ahead by 60 % of the skew window", _skew_within),
        Scenario(
            "skew-beyond",
            "l2's clock past the skew window, then corrected; dead letters replayed",
            _skew_beyond,
            expected_reasons=frozenset({"future_sent_at"}),
        ),
    )
}
