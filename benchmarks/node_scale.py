"""A node with a long history: API latency, 200 concurrent clients and memory (issue F7).

    .venv/bin/python benchmarks/node_scale.py --tickets 100000 --runs 3
    .venv/bin/python benchmarks/node_scale.py --tickets 100000 --runs 2 --database postgres
    .venv/bin/python benchmarks/node_scale.py --tickets 2000 --requests 10 --json -   # quick

**The node.** ``tix node init`` makes a node (SQLite, the default; or ``--database postgres``: a
run-unique database on 127.0.0.1:5432, or under ``TIX_BENCH_POSTGRES_URL``, dropped afterwards),
then its database is seeded with ``benchmarks/sla_sweep.py``'s ``seed``: N tickets with one
outgoing delegation each to one of five partners, realistic SLA histories and states, and their
event records (SQLAlchemy core inserts in batches of 2 000); each ticket then gets a description
of 150-400 characters (English, German and Russian phrases, a site code) for the search to
read. Then ``tix node serve`` runs it as a separate process on loopback with the machine's
RabbitMQ (a run-unique account id; its queues are deleted afterwards).

**What is measured** (httpx against the running process, as the node's admin):

* per endpoint, ``--requests`` sequential requests (after two warm-ups), p50/p95/max in ms:
  the list (first page of 50; ``status``; ``partner``; ``q`` matching a few tickets' titles;
  ``q`` matching a site code in about 100 descriptions; ``q`` of two characters; ``sla``),
  a ticket page, its chain view and its timeline, each on tickets picked at random;
* ``--clients`` (200) concurrent clients on loopback (asyncio + httpx, one connection each),
  each making ``--per-client`` requests alternating a list page and a ticket page: requests per
  second, p50/p95/p99, errors;
* the node's RSS (``VmRSS``) after each phase and its peak (``VmHWM``), and the node's CPU
  seconds per phase (``/proc``), steadier than wall time on a shared machine.

Every loop is bounded by a count and by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from account.bench.figures import percentiles
from account.bench.procs import Node, cpu_seconds, peak_rss_mib, rss_mib
from account.bench.run import _delete_queues
from account.db import make_engine
from benchmarks.sla_sweep import node_database, seed

MAX_TICKETS = 1_000_000
MAX_REQUESTS = 10_000
MAX_CLIENTS = 1_000
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
SITES = 997  # site codes in the descriptions: "site K-0..996", about N/997 tickets each
PHRASES = (
    "Customer reports the device does not respond after the last power cut.",
    "Engineer on site found a loose cable; replaced the connector and tested.",
    "Kartenleser meldet Fehler 0x3F, Gerät startet neu, Größe des Logs prüfen.",
    "Druckerstau im Ausgabefach, Rolle ersetzt, Kunde informiert.",
    "Принтер не печатает, картридж заменён, требуется проверка сети.",
    "Банкомат не выдаёт наличные, ошибка диспенсера.",
    "Waiting for spare parts from the warehouse (ETA 2 business days).",
    "Remote reset did not help; 100% reproducible with the test card_7.",
)


def describe(engine: Any, tickets: int) -> None:
    """Give every seeded ticket a description (the seed leaves them empty), in batches."""
    rng = random.Random(5)  # noqa: S311  (reproducible data)
    with engine.begin() as conn:
        for first in range(1, tickets + 1, 2_000):
            rows = [
                {
                    "i": i,
                    "d": f"site K-{i % SITES} " + " ".join(rng.sample(PHRASES, rng.randint(2, 5))),
                }
                for i in range(first, min(first + 2_000, tickets + 1))
            ]
            conn.execute(text("UPDATE ticket SET description = :d WHERE id = :i"), rows)


def _endpoints(tickets: int, rng: random.Random) -> dict[str, Any]:
    """Name → a function giving (path, params) for one request."""

    def number() -> str:
        return f"BENCH-{rng.randint(1, tickets):07d}"

    return {
        "list (first page, 50)": lambda: ("/api/v1/tickets", {}),
        "list status=in_progress": lambda: ("/api/v1/tickets", {"status": "in_progress"}),
        "list partner=…-1": lambda: ("/api/v1/tickets", {"partner": "bench-partner-1"}),
        "list q=<one ticket>": lambda: (
            "/api/v1/tickets",
            {"q": f"ticket {rng.randint(1, tickets)}"},
        ),
        "list q=<site, ~0.1 %>": lambda: (
            "/api/v1/tickets",
            {"q": f"SITE K-{rng.randint(100, SITES - 1)} "},
        ),
        "list q=<2 characters>": lambda: ("/api/v1/tickets", {"q": rng.choice(["k-", "0x", "ён"])}),
        "list sla=breached": lambda: ("/api/v1/tickets", {"sla": "breached"}),
        "ticket page": lambda: (f"/api/v1/tickets/{number()}", {}),
        "chain view": lambda: (f"/api/v1/tickets/{number()}/chain", {}),
        "timeline": lambda: (f"/api/v1/tickets/{number()}/timeline", {}),
    }


class DbCpu:
    """CPU seconds of the PostgreSQL server processes serving the node's database (0 on SQLite).

    The server runs on this machine: its backends for the database (``pg_stat_activity``) are
    read from ``/proc``; a backend that appears during a phase counts from zero.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = make_url(url).database if url else ""

    def sample(self) -> dict[int, float]:
        if not self.url:
            return {}
        admin = make_url(self.url).set(drivername="postgresql", database="postgres")
        dsn = admin.render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)
            ).fetchall()
        return {int(pid): cpu_seconds(int(pid)) for (pid,) in pids}

    def since(self, before: dict[int, float]) -> float:
        return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in self.sample().items())


def sequential(
    node: Node, tickets: int, requests: int, timeout: float, db: DbCpu
) -> dict[str, Any]:
    """p50/p95 of ``requests`` sequential requests per endpoint."""
    rng = random.Random(7)  # noqa: S311  (which tickets to ask for, not security)
    out: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {node.token}"}
    with httpx.Client(base_url=node.base_url, headers=headers, timeout=60.0) as client:
        for name, make in _endpoints(tickets, rng).items():
            times: list[float] = []
            cpu = cpu_seconds(node.pid)
            db_cpu = db.sample()
            for i in range(requests + 2):
                if time.monotonic() > deadline:
                    break
                path, params = make()
                started = time.perf_counter()
                response = client.get(path, params=params)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i >= 2:  # warm-up
                    times.append(elapsed)
            out[name] = {
                **percentiles(times),
                "node_cpu_ms_per_request": (cpu_seconds(node.pid) - cpu) * 1000 / (len(times) + 2),
                "db_cpu_ms_per_request": db.since(db_cpu) * 1000 / (len(times) + 2),
            }
    return out


async def concurrent(
    node: Node, tickets: int, clients: int, per_client: int, within: float, db: DbCpu
) -> dict[str, Any]:
    """``clients`` clients at once, each ``per_client`` requests (list page, ticket page, …)."""
    rng = random.Random(11)  # noqa: S311
    headers = {"Authorization": f"Bearer {node.token}"}
    times: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one(client: httpx.AsyncClient, k: int) -> None:
        for i in range(per_client):
            if (k + i) % 2:
                path, params = f"/api/v1/tickets/BENCH-{rng.randint(1, tickets):07d}", {}
            else:
                path, params = "/api/v1/tickets", {"limit": 20}
            started = time.perf_counter()
            try:
                response = await client.get(path, params=params)
                if response.status_code >= 400:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            times.append((time.perf_counter() - started) * 1000)

    cpu = cpu_seconds(node.pid)
    db_cpu = db.sample()
    async with httpx.AsyncClient(
        base_url=node.base_url, headers=headers, timeout=120.0, limits=limits
    ) as client:
        started = time.perf_counter()
        async with asyncio.timeout(within):
            await asyncio.gather(*(one(client, k) for k in range(clients)))
        seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(times),
        "seconds": seconds,
        "requests_per_s": len(times) / seconds,
        "latency_ms": percentiles(times),
        "errors": errors,
        "node_cpu_seconds": cpu_seconds(node.pid) - cpu,
        "db_cpu_seconds": db.since(db_cpu),
    }


def one_run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tix-scale-"))
    try:
        with node_database(args.database) as url:
            if args.database == "sqlite":
                url = ""  # the node's own file under its data directory
            return _measure(args, console, workdir, url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(args: argparse.Namespace, console: Console, workdir: Path, url: str) -> dict[str, Any]:
    extra = {"PYTHONPATH": args.pythonpath} if args.pythonpath else {}
    if url:
        extra["TIX_DATABASE_URL"] = url
    node = Node(f"scale-{os.urandom(3).hex()}", workdir, args.amqp_url, extra_env=extra)
    try:
        node.init()
        engine = make_engine(url or f"sqlite:///{node.db_path}")
        try:
            console.print(f"seeding {args.tickets} tickets into {args.database} …")
            stats = seed(engine, node.account_id, args.tickets, progress=True)
            started = time.perf_counter()
            describe(engine, stats.tickets)
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE ticket"))
            described = time.perf_counter() - started
            db_mib = _size_mib(engine, node)
        finally:
            engine.dispose()
        console.print(f"seeded in {stats.seconds:.0f} + {described:.0f} s; starting the node")
        node.start()
        node.wait_ready(timeout=120)
        rss_idle = rss_mib(node.pid)
        load = list(os.getloadavg())
        db = DbCpu(url)
        seq = sequential(node, args.tickets, args.requests, args.timeout, db)
        rss_seq = rss_mib(node.pid)
        conc = asyncio.run(
            concurrent(node, args.tickets, args.clients, args.per_client, args.timeout, db)
        )
        return {
            "tickets": stats.tickets,
            "database": args.database,
            "seed_seconds": stats.seconds + described,
            "db_mib": db_mib,
            "load_average": load,
            "sequential": seq,
            "concurrent": conc,
            "rss_mib": {
                "idle": rss_idle,
                "after_sequential": rss_seq,
                "after_concurrent": rss_mib(node.pid),
                "peak": peak_rss_mib(node.pid),
            },
        }
    finally:
        node.stop()
        asyncio.run(_delete_queues(args.amqp_url, [node.account_id]))


def _size_mib(engine: Any, node: Node) -> float:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return (
                float(conn.execute(text("SELECT pg_database_size(current_database())")).one()[0])
                / 2**20
            )
    return node.db_path.stat().st_size / 2**20


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over runs of each figure the table shows."""
    med: dict[str, Any] = {"sequential": {}, "concurrent": {}, "rss_mib": {}}
    for name in runs[0]["sequential"]:
        med["sequential"][name] = {
            key: statistics.median(r["sequential"][name][key] for r in runs)
            for key in ("p50", "p95", "max", "node_cpu_ms_per_request", "db_cpu_ms_per_request")
        }
    conc = [r["concurrent"] for r in runs]
    med["concurrent"] = {
        "requests_per_s": statistics.median(c["requests_per_s"] for c in conc),
        "p50": statistics.median(c["latency_ms"]["p50"] for c in conc),
        "p95": statistics.median(c["latency_ms"]["p95"] for c in conc),
        "p99": statistics.median(c["latency_ms"]["p99"] for c in conc),
        "errors": sum(sum(c["errors"].values()) for c in conc),
        "node_cpu_ms_per_request": statistics.median(
            c["node_cpu_seconds"] * 1000 / max(1, c["requests"]) for c in conc
        ),
        "db_cpu_ms_per_request": statistics.median(
            c["db_cpu_seconds"] * 1000 / max(1, c["requests"]) for c in conc
        ),
    }
    for key in runs[0]["rss_mib"]:
        med["rss_mib"][key] = statistics.median(r["rss_mib"][key] for r in runs)
    return med


def table(result: dict[str, Any]) -> Table:
    med = result["median"]
    out = Table(
        title=f"node ({result['database']}) with {result['tickets']} tickets, "
        f"median of {result['runs']} runs"
    )
    out.add_column("figure")
    out.add_column("p50 ms", justify="right")
    out.add_column("p95 ms", justify="right")
    out.add_column("node CPU ms/request", justify="right")
    out.add_column("PostgreSQL CPU ms/request", justify="right")
    for name, p in med["sequential"].items():
        out.add_row(
            name,
            f"{p['p50']:.1f}",
            f"{p['p95']:.1f}",
            f"{p['node_cpu_ms_per_request']:.1f}",
            f"{p['db_cpu_ms_per_request']:.1f}",
        )
    c = med["concurrent"]
    out.add_row(
        f"{result['clients']} concurrent clients ({c['requests_per_s']:.0f} req/s, "
        f"p99 {c['p99']:.0f} ms, {c['errors']} errors)",
        f"{c['p50']:.1f}",
        f"{c['p95']:.1f}",
        f"{c['node_cpu_ms_per_request']:.1f}",
        f"{c['db_cpu_ms_per_request']:.1f}",
    )
    rss = med["rss_mib"]
    out.add_row(
        "node RSS MiB idle / after / peak",
        f"{rss['idle']:.0f}",
        f"{rss['after_concurrent']:.0f}",
        f"peak {rss['peak']:.0f}",
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--requests", type=int, default=50, help="per endpoint, sequential")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--amqp-url", default=os.environ.get("TIX_AMQP_URL", DEFAULT_AMQP_URL))
    parser.add_argument(
        "--pythonpath", default="", help="run the node from this source tree (before/after)"
    )
    parser.add_argument("--json", dest="json_path", default="", help="write JSON here (- stdout)")
    args = parser.parse_args(argv)
    args.tickets = max(1, min(args.tickets, MAX_TICKETS))
    args.requests = max(1, min(args.requests, MAX_REQUESTS))
    args.clients = max(1, min(args.clients, MAX_CLIENTS))
    args.per_client = max(1, min(args.per_client, MAX_REQUESTS))
    console = Console(stderr=True)
    runs = [one_run(args, console) for _ in range(max(1, min(args.runs, 20)))]
    result = {
        "tickets": args.tickets,
        "database": args.database,
        "runs": len(runs),
        "clients": args.clients,
        "median": median_of(runs),
        "each": runs,
    }
    console.print(table(result))
    if args.json_path == "-":
        print(json.dumps(result, indent=2, default=str))
    elif args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
