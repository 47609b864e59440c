"""One ``tix bench`` run: four node processes, the chain drive, the raw baseline, the figures."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from account.bench import chain as chain_mod
from account.bench import figures
from account.bench.procs import Node, cpu_seconds, peak_rss_mib
from account.bench.raw import raw_baseline

LEVELS = 4
MAX_TICKETS = 2000
MAX_RAW = 100_000
RAW_WINDOW = 64


async def _delete_queues(url: str, accounts: list[str]) -> None:
    from exchange.amqp import AmqpTransport

    transport = AmqpTransport(url)
    with contextlib.suppress(Exception):
        await transport.connect()
        for account in accounts:
            await transport.delete_inbox(account)
    with contextlib.suppress(Exception):
        await transport.close()


def run_bench(
    *,
    amqp_url: str,
    tickets: int = 200,
    raw_messages: int = 2000,
    rate: float = 0.0,
    concurrency: int = 8,
    timeout: float = 300.0,
    keep: bool = False,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run everything once and return the figures (see ``docs/performance.md``)."""
    tickets = max(1, min(tickets, MAX_TICKETS))
    raw_messages = max(1, min(raw_messages, MAX_RAW))
    console = console or Console(stderr=True)
    suffix = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="tix-bench-"))
    nodes = [Node(f"bench-{suffix}-l{i}", workdir, amqp_url) for i in range(LEVELS)]
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "settings": {
            "tickets": tickets,
            "levels": LEVELS,
            "rate": rate,
            "concurrency": concurrency,
            "accept": "auto_accept contracts (each node accepts in the offer's transaction)",
            "raw_messages": raw_messages,
        },
    }
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            setup = progress.add_task("start 4 nodes", total=LEVELS * 2 + LEVELS - 1)
            with ThreadPoolExecutor(LEVELS) as pool:
                for _ in pool.map(Node.init, nodes):
                    progress.advance(setup)
            for node in nodes:
                node.start()
            for node in nodes:
                node.wait_ready()
                progress.advance(setup)
            for up, down in itertools.pairwise(nodes):
                asyncio.run(chain_mod.link(up, down, {"auto_accept": True}, within=60))
                progress.advance(setup)

            tasks = {
                "created": progress.add_task("L0 created + delegated", total=tickets),
                "leaf_resolved": progress.add_task("L3 resolved", total=tickets),
                "confirmed": progress.add_task("L0 confirmed", total=tickets),
                "closed_at_leaf": progress.add_task("L3 closed (confirm arrived)", total=tickets),
            }

            def advance(stage: str, n: int) -> None:
                progress.advance(tasks[stage], n)

            cpu_before = [cpu_seconds(node.pid) for node in nodes]
            since = datetime.now(UTC)
            drive = asyncio.run(
                chain_mod.drive(
                    nodes,
                    tickets=tickets,
                    rate=rate,
                    concurrency=concurrency,
                    within=timeout,
                    advance=advance,
                )
            )
            cpu_after = [cpu_seconds(node.pid) for node in nodes]
            rss = [peak_rss_mib(node.pid) for node in nodes]
            for node in nodes:
                node.stop()
            found = figures.analyse(
                [node.db_path for node in nodes], [node.account_id for node in nodes], since
            )
            size = int(found["mean_envelope_bytes"]) or 1500

            raw_task = progress.add_task("raw aio-pika (confirm each)", total=raw_messages)
            raw_one = asyncio.run(
                raw_baseline(
                    amqp_url,
                    count=raw_messages,
                    size=size,
                    window=1,
                    within=timeout,
                    progress=lambda n: progress.advance(raw_task, n),
                )
            )
            raw_task = progress.add_task(
                f"raw aio-pika ({RAW_WINDOW} in flight)", total=raw_messages
            )
            raw_win = asyncio.run(
                raw_baseline(
                    amqp_url,
                    count=raw_messages,
                    size=size,
                    window=RAW_WINDOW,
                    within=timeout,
                    progress=lambda n: progress.advance(raw_task, n),
                )
            )
        tix_rate = found["messages"] / drive.seconds
        result["raw"] = {
            "confirm_each": raw_one.__dict__,
            f"window_{RAW_WINDOW}": raw_win.__dict__,
        }
        result["tix"] = {
            "tickets": tickets,
            "seconds": drive.seconds,
            "tickets_per_s": tickets / drive.seconds,
            "messages": found["messages"],
            "messages_per_s": tix_rate,
            "messages_per_ticket": found["messages"] / tickets,
            "messages_by_type": found["messages_by_type"],
            # roll-ups superseded by a newer one before they left (not in ``messages``)
            "superseded": found["superseded"],
            "mean_envelope_bytes": found["mean_envelope_bytes"],
            "driver_http_requests": drive.http_requests,
            "offer_hop_ms": found["offer_hop_ms"],
            "offer_hop_ms_by_hop": found["offer_hop_ms_by_hop"],
            "any_hop_ms": found["any_hop_ms"],
            "leaf_to_origin_ms": found["leaf_to_origin_ms"],
            "nodes": [
                {
                    "level": i,
                    "account": node.account_id,
                    "cpu_seconds": round(cpu_after[i] - cpu_before[i], 2),
                    "peak_rss_mib": round(rss[i], 1),
                }
                for i, node in enumerate(nodes)
            ],
        }
        result["ratio"] = {
            "tix_over_raw_confirm_each": tix_rate / raw_one.messages_per_s,
            f"tix_over_raw_window_{RAW_WINDOW}": tix_rate / raw_win.messages_per_s,
        }
        result["machine"]["load_average_after"] = (
            list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        )
        return result
    finally:
        for node in nodes:
            with contextlib.suppress(Exception):
                node.stop()
        asyncio.run(_delete_queues(amqp_url, [node.account_id for node in nodes]))
        if keep:
            console.print(f"node data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(result: dict[str, Any]) -> Table:
    """The figures of one run as a rich table."""
    tix = result["tix"]
    raw = result["raw"]
    out = Table(title=f"tix bench: {tix['tickets']} tickets down {LEVELS} levels")
    out.add_column("figure")
    out.add_column("value", justify="right")
    one = raw["confirm_each"]
    win = raw[f"window_{RAW_WINDOW}"]
    out.add_row(
        f"raw aio-pika, confirm each ({one['size']} B)", f"{one['messages_per_s']:.0f} msg/s"
    )
    out.add_row(
        f"raw aio-pika, {RAW_WINDOW} confirms in flight", f"{win['messages_per_s']:.0f} msg/s"
    )
    out.add_row("Tix tickets/s", f"{tix['tickets_per_s']:.1f}")
    out.add_row(
        "Tix messages/s",
        f"{tix['messages_per_s']:.0f} "
        f"({tix['messages']} msgs, {tix['messages_per_ticket']:.1f}/ticket;"
        f" {tix['superseded']} roll-ups superseded before they left)",
    )
    ratio = result["ratio"]
    out.add_row("ratio Tix ÷ raw (confirm each)", f"{ratio['tix_over_raw_confirm_each']:.2f}")
    out.add_row(
        f"ratio Tix ÷ raw ({RAW_WINDOW} in flight)",
        f"{ratio[f'tix_over_raw_window_{RAW_WINDOW}']:.2f}",
    )
    for label, key in (
        ("offer hop (all)", "offer_hop_ms"),
        ("any message hop", "any_hop_ms"),
        ("leaf resolved → origin sees it", "leaf_to_origin_ms"),
    ):
        p = tix[key]
        out.add_row(
            f"{label} p50/p95/p99 ms", f"{_ms(p['p50'])} / {_ms(p['p95'])} / {_ms(p['p99'])}"
        )
    for hop, p in tix["offer_hop_ms_by_hop"].items():
        out.add_row(
            f"  offer {hop} p50/p95/p99 ms", f"{_ms(p['p50'])} / {_ms(p['p95'])} / {_ms(p['p99'])}"
        )
    for node in tix["nodes"]:
        out.add_row(
            f"node L{node['level']} CPU s / peak RSS MiB",
            f"{node['cpu_seconds']:.1f} / {node['peak_rss_mib']:.0f}",
        )
    load = result["machine"].get("load_average") or []
    out.add_row("load average (1/5/15 min) at start", " / ".join(f"{x:.2f}" for x in load))
    return out
