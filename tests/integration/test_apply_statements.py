"""What applying a partner's message costs in SQL, per message type (benchmarks/apply_cost.py).

Statement and flush counts do not depend on the machine, so they are asserted as budgets: a
change that makes a roll-up query the ticket, its delegations or its links again, or flush
after every query, fails here before it shows in ``tix bench``. The budgets are today's
counts (SQLite; docs/performance.md, "Applying messages and rolling up").
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from account.db import create_tables, make_engine
from account.messaging import outbox

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "apply_cost.py"

# (what, statements, flushes) per call, at most.
BUDGETS = [
    ("apply ticket.status at l0", 7, 1),  # the origin: no roll-up further up
    ("apply ticket.status at l1", 10, 1),  # applied and rolled up to l0
    ("apply delegation.accept at l1", 13, 2),
    ("apply resolution.confirm at l2", 18, 2),  # closes, confirms below, rolls up once
]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_apply_cost", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_applying_and_rolling_up_stays_within_its_statement_budget(tmp_path: Path) -> None:
    result = _script().run(2, tmp_path)
    assert result["envelopes_per_ticket"] == 27  # 3 offers, 3 accepts, 3 confirms, 18 roll-ups
    rows = {row["what"]: row for row in result["rows"]}
    over = [
        (what, rows[what]["statements_each"], rows[what]["flushes_each"])
        for what, statements, flushes in BUDGETS
        if rows[what]["statements_each"] > statements or rows[what]["flushes_each"] > flushes
    ]
    assert over == []


def test_superseding_reads_the_pending_rows_through_the_state_index(tmp_path: Path) -> None:
    """Not every row ever sent to the recipient (SQLite has no statistics to tell them apart)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    create_tables(engine)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, params: Any, *_rest: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append((sql, params))

    with Session(engine) as session:
        event.listen(engine, "before_cursor_execute", capture)
        try:
            outbox.supersede_pending(
                session=session, account_id="l1", to="gc", subject="d1", message_type="x"
            )
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        ((sql, params),) = seen
        plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
    engine.dispose()
    assert [row[3] for row in plan] == [
        "SEARCH outboxmessage USING INDEX ix_outboxmessage_state (state=?)"
    ]
