"""``tix chaos`` / ``python -m tests.faults.chaos``: run the fault scenarios and print the table.

Starts one private RabbitMQ node (own ports and data directory under /tmp; the machine's broker
on 5672 is never touched), then for each scenario a fresh four-level chain of node processes
carrying ``--tickets`` tickets while the scenario's fault is injected, and prints one row per
scenario: faults injected, tickets, messages, lost, duplicated effects, transport duplicates,
time to converge after the fault was healed. Exits 1 if any scenario broke the oracle.
Needs root (the broker's run directory is handed to user rabbitmq) and a source checkout.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.faults.scenarios import SCENARIOS, Result, run_fresh
from tests.support.private_broker import PrivateBroker, free_port


def table(results: Sequence[Result], title: str) -> Table:
    grid = Table(title=title)
    for name, justify in (
        ("scenario", "left"),
        ("fault", "left"),
        ("faults injected", "right"),
        ("tickets", "right"),
        ("messages", "right"),
        ("lost", "right"),
        ("duplicated (effects)", "right"),
        ("transport duplicates", "right"),
        ("converged after heal", "right"),
        ("oracle", "left"),
    ):
        grid.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        v = r.verdict
        grid.add_row(
            r.scenario,
            r.fault,
            str(r.injected),
            str(v.tickets),
            str(v.messages),
            str(len(v.lost)),
            str(len(v.duplicated)),
            str(v.transport_duplicates),
            f"{r.converge_seconds:.1f} s",
            "[green]pass[/]" if r.ok else f"[red]FAIL[/] {v.summary()}",
        )
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tix chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=500, help="tickets per scenario")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--long", action="store_true", help="long variants: 60 s outage, 5-minute skew window"
    )
    parser.add_argument("--keep", action="store_true", help="keep the nodes' data and logs")
    args = parser.parse_args(argv)
    return run_all(args.scenario or list(SCENARIOS), args.tickets, args.long, args.keep)


def run_all(names: Sequence[str], tickets: int, long: bool, keep: bool = False) -> int:
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="tix-chaos-", dir="/tmp"))
    root.chmod(0o755)  # the broker runs as user rabbitmq and must reach its directory
    broker = PrivateBroker(
        root / "broker", f"tixchaos{uuid.uuid4().hex[:8]}@localhost", free_port(), free_port()
    )
    results: list[Result] = []
    try:
        console.print(f"starting a private RabbitMQ node on port {broker.port} …")
        broker.start()
        for name in names:
            console.print(f"[bold]{name}[/]: {tickets} tickets …")
            result = run_fresh(SCENARIOS[name], broker, root / name, tickets=tickets, long=long)
            results.append(result)
            console.print(
                f"  {'pass' if result.ok else 'FAIL'} in {result.total_seconds:.0f} s;"
                f" {' '.join(result.notes)}"
            )
            if not result.ok:
                console.print(f"  {result.verdict.summary()}")
    finally:
        broker.stop()
        if keep:
            console.print(f"data and logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    console.print(table(results, f"Tix fault suite: {tickets} tickets per scenario"))
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
