"""``python -m tests.hostile [--postgres]``: the hostile HTTP cases as a table.

Then the hostile envelopes (in-process inbox). Exit status 0 when every case passed. The
schemathesis run is pytest-only (``pytest tests/hostile``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.hostile.http_cases import CASES, Verdict, check
from tests.hostile.wire_cases import WIRE_CASES, WireVerdict, check_wire, wire
from tests.hostile.world import world
from tests.support.db import database_url


async def run(backend: str) -> list[Verdict]:
    with tempfile.TemporaryDirectory(prefix="tix-hostile-") as tmp:
        directory = Path(tmp)
        with database_url(backend, directory) as url:
            async with world(url, directory / "node") as w:
                return [await check(w, case) for case in CASES]


def run_wire(backend: str) -> list[WireVerdict]:
    with (
        tempfile.TemporaryDirectory(prefix="tix-hostile-wire-") as tmp,
        wire(Path(tmp), backend) as w,
    ):
        return [check_wire(w, case) for case in WIRE_CASES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile")
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL, not SQLite")
    args = parser.parse_args(argv)
    logging.getLogger("tix.inbox").setLevel(logging.ERROR)  # each rejection logs a warning
    backend = "postgresql" if args.postgres else "sqlite"
    verdicts = asyncio.run(run(backend))
    table = Table(title=f"Tix hostile HTTP input ({backend})")
    for column in ("group", "case", "expected", "got", "unchanged", "serving", "result"):
        table.add_column(column)
    for v in verdicts:
        table.add_row(
            v.case.group,
            v.case.id,
            v.case.expected,
            v.got,
            "stores" if v.case.stores else ("yes" if v.unchanged else "NO"),
            "yes" if v.serving else "NO",
            "[green]pass[/]" if v.passed else "[red]FAIL[/]",
        )
    console = Console(width=200)
    console.print(table)
    wire_verdicts = run_wire(backend)
    wire_table = Table(title=f"Tix hostile envelopes (in-process inbox, {backend})")
    for column in ("case", "expected", "got", "nothing else changed", "next applied", "result"):
        wire_table.add_column(column)
    for w in wire_verdicts:
        wire_table.add_row(
            w.case.id,
            w.case.expected,
            w.got,
            "yes" if w.unchanged else "NO",
            "yes" if w.next_applied else "NO",
            "[green]pass[/]" if w.passed else "[red]FAIL[/]",
        )
    console.print(wire_table)
    failed = [v.case.id for v in verdicts if not v.passed]
    failed += [w.case.id for w in wire_verdicts if not w.passed]
    total = len(verdicts) + len(wire_verdicts)
    console.print(f"{total - len(failed)}/{total} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
