"""Keeps ``benchmarks/sla_sweep.py`` working: seed a small node, sweep it quiet and busy.

No timing is asserted (speed goes into the benchmark's figures); what is checked is what the
figures rest on: the seeded node is in a steady state (nothing due, every reached threshold
recorded), the busy delegations are exactly the due ones, each of them emits its missing event
and nothing is left due after a sweep, run after run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from account.context import Identity
from account.db import make_engine
from account.sla.models import SlaEventRecord
from exchange.signing import generate_key
from tests.support.db import database_url

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sla_sweep.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sla_sweep", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _records(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(SlaEventRecord)).scalar_one())


def test_seed_then_quiet_and_busy_sweeps(tmp_path: Path, db_backend: str) -> None:
    with database_url(db_backend, tmp_path) as url:
        _seed_and_sweep(make_engine(url))


def _seed_and_sweep(engine: Engine) -> None:
    bench = _bench()
    try:
        stats = bench.seed(engine, "bench-smoke", 200)
        assert stats.tickets == stats.delegations == 200
        assert stats.event_records == _records(engine) > 0
        assert len(stats.states) >= 3  # mixed clock states, not one kind of ticket
        assert sum(stats.kinds.values()) == 200

        busy = bench.choose_busy(engine, 0.05)
        assert len(busy) == len(set(busy)) == 10
        assert _records(engine) == stats.event_records - 10

        identity = Identity(account_id="bench-smoke", label="Smoke", key=generate_key())
        base = bench.baseline(engine)
        quiet = bench.measure_sweeps(engine, identity, [], 1, base)
        assert quiet["due"] == 0
        assert quiet["events"] == [0]
        assert quiet["due_after"] == 0

        loaded = bench.measure_sweeps(engine, identity, busy, 2, base)
        assert loaded["due"] == 10
        assert len(loaded["events"]) == 2
        assert all(sent >= 10 for sent in loaded["events"])  # each due one emits its event
        assert loaded["due_after"] == 0
        assert _records(engine) >= stats.event_records  # the traced run's events are kept

        refresh = bench.measure_refresh(engine, sample=50, repeat=1)
        assert refresh["sample"] == 50
    finally:
        engine.dispose()
