"""A four-level chain of node processes on a private broker, carrying a bounded ticket load.

``Chain.build`` starts ``gc → l1 → l2 → l3`` as separate ``tix node serve`` processes (run-unique
account ids, auto-accepting contracts). ``Load`` drives N tickets through the whole life cycle
from a background thread: the GC creates and delegates each ticket, every level accepts
(auto-accept) and delegates on, the leaf resolves, each level above resolves once its delegation
is resolved, and the GC resolves its ticket and confirms, which closes every level below.

The driver reads each node's database (``read_db``: the SQLite file read-only, or the node's
PostgreSQL database) to see where every ticket is, and acts over HTTP; a node that is down or
slow just makes it wait. An action whose outcome is unknown (the request died on the way) is
not repeated until the database shows it did not happen and a cooldown passed, so the driver
never doubles an effect itself.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.support.db import node_database_url
from tests.support.nodes import NodeProcess, eventually, link, run_id
from tests.support.private_broker import PrivateBroker

LEVELS = ("gc", "l1", "l2", "l3")
# Every node may be faulted: crash points and the chaos wrapper stay off until env asks.
BASE_ENV = {"TIX_FAULT_INJECTION": "1"}
COOLDOWN = 20.0  # seconds before an action with an unknown outcome is tried again
# Steps per ticket the driver takes: create+delegate at the GC, delegate at l1 and l2, resolve
# at l3, resolve at l2 and l1, resolve+confirm at the GC.
STEPS = 7


class _Row(tuple[Any, ...]):
    """A PostgreSQL row read like ``sqlite3.Row``: by position, by column name, ``dict(row)``."""

    names: tuple[str, ...] = ()

    def keys(self) -> tuple[str, ...]:
        return self.names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self.names.index(key))
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> _Row:
        row = _Row(values)
        row.names = names
        return row

    return make


@contextlib.contextmanager
def read_db(url: str) -> Iterator[Any]:
    """A connection to a node's database for reading, rows like ``sqlite3.Row``: its SQLite
    file read-only (WAL: never blocks the node) or its PostgreSQL database (autocommit)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(
            f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=30
        )
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()
        return
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True, row_factory=_row_factory) as pg:
        yield pg


@dataclass
class Chain:
    """Four node processes linked gc → l1 → l2 → l3 over one broker."""

    nodes: list[NodeProcess]
    broker: PrivateBroker
    workdir: Path
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    databases: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def build(
        cls,
        broker: PrivateBroker,
        workdir: Path,
        *,
        env: dict[str, dict[str, str]] | None = None,
        contract: dict[str, Any] | None = None,
        backend: str = "sqlite",
    ) -> Chain:
        """Init, start and link the four nodes, each on a database of ``backend``; ``env``
        adds settings per level name."""
        suffix = run_id()
        databases = contextlib.ExitStack()
        nodes = [
            NodeProcess(
                f"{name}-{suffix}",
                workdir,
                amqp_url=broker.url,
                label=name.upper(),
                database_url=node_database_url(backend, databases),
            )
            for name in LEVELS
        ]
        chain = cls(nodes, broker, workdir, env or {}, databases)
        try:
            with ThreadPoolExecutor(len(nodes)) as pool:
                list(pool.map(lambda n: n.init(), nodes))
                list(
                    pool.map(
                        lambda pair: pair[1].start(BASE_ENV | (env or {}).get(LEVELS[pair[0]], {})),
                        enumerate(nodes),
                    )
                )
            terms = {"auto_accept": True} | (contract or {})
            for up, down in itertools.pairwise(nodes):
                link(up, down, terms)
        except BaseException:
            chain.close()  # no node process, client or database left behind by a failed build
            raise
        return chain

    def db(self, node: NodeProcess) -> str:
        """The node's database URL (``read_db`` opens it)."""
        return node.db_url

    def by_name(self, name: str) -> NodeProcess:
        return self.nodes[LEVELS.index(name)]

    def restart(self, name: str, extra_env: dict[str, str] | None = None) -> None:
        """Start a stopped or killed node again (same database), with base env plus extra."""
        node = self.by_name(name)
        node.start(BASE_ENV | self.env.get(name, {}) | (extra_env or {}))

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.databases.close()

    def outbox_pending(self) -> int:
        total = 0
        for node in self.nodes:
            with read_db(self.db(node)) as conn:
                total += conn.execute(
                    "SELECT count(*) FROM outboxmessage WHERE state NOT IN ('sent', 'superseded')"
                ).fetchone()[0]
        return total

    def queued(self) -> int:
        """Messages still in the chain's inboxes on the broker (ready or unacked)."""
        out = self.broker.ctl("list_queues", "-q", "name", "messages", "--no-table-headers")
        names = {f"tix.inbox.{n.account_id}" for n in self.nodes}
        total = 0
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in names:
                total += int(parts[1])
        return total


@dataclass
class _Track:
    """What the driver knows about one ticket's chain: its number at each level."""

    numbers: list[str | None] = field(default_factory=lambda: [None] * len(LEVELS))
    done: bool = False


class Load:
    """Drives ``tickets`` tickets through the chain from a background thread; see the module."""

    def __init__(self, chain: Chain, tickets: int, *, window: int = 100) -> None:
        self.chain = chain
        self.total = tickets
        self.window = window
        self.tracks: list[_Track] = []
        self.steps_done = 0
        self.errors: list[str] = []
        self._issued: dict[tuple[int, str, str], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    @property
    def progress(self) -> float:
        return self.steps_done / (self.total * STEPS)

    @property
    def finished(self) -> bool:
        return len(self.tracks) == self.total and all(t.done for t in self.tracks)

    def wait_progress(self, fraction: float, timeout: float = 600.0) -> None:
        eventually(
            lambda: self.progress >= fraction or self.finished,
            timeout=timeout,
            interval=0.05,
            what=f"load at {fraction:.0%} (now {self.progress:.0%})",
        )

    def wait_finished(self, timeout: float) -> None:
        eventually(
            lambda: self.finished,
            timeout=timeout,
            interval=0.2,
            what=f"every ticket confirmed at the GC (now {self.progress:.0%})",
        )

    @property
    def gc_numbers(self) -> list[str]:
        return [t.numbers[0] for t in self.tracks if t.numbers[0]]

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set() and not self.finished:
            self.rounds += 1
            try:
                self._round()
            except Exception as exc:  # a node's DB or API is away: look again shortly
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            self._stop.wait(0.1)

    def _views(self) -> list[dict[str, Any]]:
        """Per level: tickets by upstream delegation id and by number, out delegations by ticket."""
        views = []
        for node in self.chain.nodes:
            with read_db(self.chain.db(node)) as conn:
                tickets = [dict(r) for r in conn.execute("SELECT * FROM ticket")]
                outs = [
                    dict(r)
                    for r in conn.execute(
                        "SELECT ticket_id, delegation_id, state FROM delegation WHERE role='out'"
                    )
                ]
            out_by_ticket = {d["ticket_id"]: d for d in outs}
            views.append(
                {
                    "by_upstream": {t["upstream_delegation_id"]: t for t in tickets},
                    "by_number": {t["number"]: t for t in tickets},
                    "out": out_by_ticket,
                }
            )
        return views

    def _round(self) -> None:
        views = self._views()
        actions: dict[int, list[Callable[[], None]]] = {i: [] for i in range(len(LEVELS))}
        steps = 0
        open_tracks = sum(1 for t in self.tracks if not t.done)
        while len(self.tracks) < self.total and open_tracks < self.window:
            self.tracks.append(_Track())
            open_tracks += 1
        for index, track in enumerate(self.tracks):
            if track.done:
                steps += STEPS
            elif track.numbers[0] is None:
                self._queue(actions, index, 0, "create", "")
            else:
                steps += self._plan(index, track, views, actions)
        self.steps_done = steps
        with ThreadPoolExecutor(len(LEVELS)) as pool:
            list(pool.map(_run_all, actions.values()))

    def _plan(
        self,
        index: int,
        track: _Track,
        views: list[dict[str, Any]],
        actions: dict[int, list[Callable[[], None]]],
    ) -> int:
        """Queue the next action of one ticket; return how many of its steps are done."""
        gc_number = track.numbers[0]
        if gc_number is None:
            return 0
        steps = 1
        below_id: str | None = None
        for level in range(len(LEVELS)):
            view = views[level]
            if level == 0:
                ticket = view["by_number"].get(gc_number)
            else:
                ticket = view["by_upstream"].get(below_id)
            if ticket is None:
                break
            track.numbers[level] = ticket["number"]
            out = view["out"].get(ticket["id"])
            last = level == len(LEVELS) - 1
            if not last and out is None:
                if ticket["status"] in ("new", "open"):
                    self._queue(actions, index, level, "delegate", ticket["number"])
                break
            if last:
                if ticket["status"] == "open":
                    self._queue(actions, index, level, "resolve", ticket["number"])
                break
            steps += 1 if level > 0 else 0
            below_id = out["delegation_id"]
        # Upward: a level resolves once its delegation is resolved; the GC also confirms.
        for level in range(len(LEVELS) - 1, -1, -1):
            number = track.numbers[level]
            if number is None:
                continue
            ticket = views[level]["by_number"].get(number)
            if ticket is None:
                continue
            out = views[level]["out"].get(ticket["id"])
            if level == len(LEVELS) - 1:
                if ticket["status"] in ("resolved", "closed"):
                    steps += 1
                continue
            if out is None:
                continue
            if level == 0:
                if out["state"] == "confirmed":
                    track.done = True
                    return STEPS
                if out["state"] == "resolved":
                    self._queue(actions, index, 0, "confirm", number, out["delegation_id"])
                continue
            if ticket["status"] in ("resolved", "closed"):
                steps += 1
            elif out["state"] == "resolved":
                self._queue(actions, index, level, "resolve", number)
        return steps

    def _queue(
        self,
        actions: dict[int, list[Callable[[], None]]],
        index: int,
        level: int,
        what: str,
        number: str,
        delegation_id: str = "",
    ) -> None:
        key = (index, LEVELS[level], what)
        if time.monotonic() - self._issued.get(key, -COOLDOWN) < COOLDOWN:
            return
        if what == "create":
            actions[level].append(lambda: self._create(index))
        else:
            actions[level].append(lambda: self._act(key, level, what, number, delegation_id))

    def _act(
        self, key: tuple[int, str, str], level: int, what: str, number: str, delegation_id: str
    ) -> None:
        node = self.chain.nodes[level]
        self._issued[key] = time.monotonic()
        try:
            if what == "delegate":
                partner = self.chain.nodes[level + 1].account_id
                node.client.post(f"/api/v1/tickets/{number}/delegations", json={"partner": partner})
            elif what == "resolve":
                node.client.post(f"/api/v1/tickets/{number}/status", json={"status": "resolved"})
            elif what == "confirm":
                node.client.post(f"/api/v1/tickets/{number}/status", json={"status": "resolved"})
                node.client.post(f"/api/v1/delegations/{delegation_id}/confirm", json={})
        except httpx.ConnectError:
            self._issued.pop(key, None)  # nothing reached the node: try again next round
        except httpx.HTTPError as exc:
            self.errors.append(f"{LEVELS[level]} {what} {number}: {exc!r}"[:300])

    def _create(self, index: int) -> None:
        """Create the GC's ticket (a lost answer leaves an orphan ticket, never a second chain)."""
        gc = self.chain.nodes[0]
        key = (index, "gc", "create")
        self._issued[key] = time.monotonic()
        try:
            response = gc.client.post("/api/v1/tickets", json={"title": f"Chaos ticket {index}"})
            response.raise_for_status()
            number = response.json()["number"]
            self.tracks[index].numbers[0] = number
            gc.client.post(
                f"/api/v1/tickets/{number}/delegations",
                json={"partner": self.chain.nodes[1].account_id},
            )
        except httpx.ConnectError:
            self._issued.pop(key, None)
        except httpx.HTTPError as exc:
            self.errors.append(f"gc create {index}: {exc!r}"[:300])


def _run_all(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()
