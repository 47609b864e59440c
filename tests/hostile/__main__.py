"""``python -m tests.hostile [--postgres]``: the hostile HTTP cases as a table.

Exit status 0 when every case passed. The wire cases and the schemathesis run are pytest-only
(``pytest tests/hostile``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.hostile.http_cases import CASES, Verdict, check
from tests.hostile.world import world
from tests.support.db import database_url


async def run(backend: str) -> list[Verdict]:
    with tempfile.TemporaryDirectory(prefix="tix-hostile-") as tmp:
        directory = Path(tmp)
        with database_url(backend, directory) as url:
            async with world(url, directory / "node") as w:
                return [await check(w, case) for case in CASES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile")
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL, not SQLite")
    args = parser.parse_args(argv)
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
    failed = [v.case.id for v in verdicts if not v.passed]
    console.print(f"{len(verdicts) - len(failed)}/{len(verdicts)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
