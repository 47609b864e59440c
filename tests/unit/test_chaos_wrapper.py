"""The test-only chaos wrapper and crash-point skip: off by default, and doing what they say."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from exchange import chaos
from exchange.chaos import ChaosSpec, ChaosTransport, maybe_wrap, parse_spec
from exchange.transport import DeadLetter, Handler, Transport


class Recorder(Transport):
    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return True

    async def declare_inbox(self, account_id: str) -> None:
        return None

    async def delete_inbox(self, account_id: str) -> None:
        return None

    async def publish(
        self, *, to: str, body: bytes, message_id: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.sent.append(message_id)

    async def consume(self, account_id: str, handler: Handler) -> None:
        return None

    async def dead_letters(self, account_id: str, *, limit: int = 100) -> list[DeadLetter]:
        return []

    async def replay_dead(self, account_id: str, *, limit: int = 100) -> int:
        return 0


def test_the_wrapper_stays_off_without_fault_injection() -> None:
    inner = Recorder()
    assert maybe_wrap(inner, {"TIX_CHAOS": "dup:1"}) is inner
    assert maybe_wrap(inner, {"TIX_FAULT_INJECTION": "1"}) is inner
    assert maybe_wrap(inner, {"TIX_FAULT_INJECTION": "1", "TIX_CHAOS": "dup:0"}) is inner
    wrapped = maybe_wrap(inner, {"TIX_FAULT_INJECTION": "1", "TIX_CHAOS": "dup:0.5"})
    assert isinstance(wrapped, ChaosTransport)


@pytest.mark.parametrize("bad", ["dup", "dup:2", "hold:0.1:0", "drop:0.1", "dup:x"])
def test_bad_specs_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_spec(bad)


async def test_dup_publishes_every_envelope_twice_and_logs_it(tmp_path: Path) -> None:
    inner = Recorder()
    log = tmp_path / "chaos.log"
    wrapped = ChaosTransport(inner, ChaosSpec(dup=1.0), seed=1, log_path=str(log))
    for i in range(3):
        await wrapped.publish(to="b", body=b"x", message_id=f"m{i}")
    await wrapped.close()
    assert inner.sent == ["m0", "m0", "m1", "m1", "m2", "m2"]
    assert log.read_text().splitlines() == ["dup m0", "dup m1", "dup m2"]


async def test_hold_lets_later_envelopes_overtake_and_releases_on_count() -> None:
    inner = Recorder()
    wrapped = ChaosTransport(inner, ChaosSpec(hold=1.0, hold_after=2), seed=1)
    await wrapped.publish(to="b", body=b"x", message_id="held")
    wrapped._spec = ChaosSpec(hold_after=2)  # only the first one is held
    for i in range(3):
        await wrapped.publish(to="b", body=b"x", message_id=f"m{i}")
    await wrapped.close()
    assert inner.sent == ["m0", "m1", "held", "m2"]
    assert wrapped.injected == {"dup": 0, "hold": 1, "release": 1}


async def test_hold_releases_after_a_while_without_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos, "HOLD_SECONDS", 0.1)
    inner = Recorder()
    wrapped = ChaosTransport(inner, ChaosSpec(hold=1.0, hold_after=100), seed=1)
    await wrapped.publish(to="b", body=b"x", message_id="held")
    assert inner.sent == []
    for _ in range(40):
        if inner.sent:
            break
        await asyncio.sleep(0.05)
    await wrapped.close()
    assert inner.sent == ["held"]


async def test_the_spec_file_switches_faults_in_a_running_wrapper(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    spec.write_text("")
    inner = Recorder()
    env = {"TIX_FAULT_INJECTION": "1", "TIX_CHAOS_FILE": str(spec)}
    wrapped = maybe_wrap(inner, env)
    assert isinstance(wrapped, ChaosTransport)
    await wrapped.publish(to="b", body=b"x", message_id="a")
    spec.write_text("dup:1")
    wrapped._spec_read = -1.0  # skip the 0.2 s re-read interval
    await wrapped.publish(to="b", body=b"x", message_id="b")
    await wrapped.close()
    assert inner.sent == ["a", "b", "b"]


def test_a_crash_point_with_a_skip_passes_that_many_times_then_kills() -> None:
    code = (
        "from exchange.faults import crash_point\n"
        "for i in range(5):\n"
        "    print(i, flush=True)\n"
        "    crash_point('after_commit_before_publish')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIX_", "FI_"))}
    env |= {
        "TIX_FAULT_INJECTION": "1",
        "FI_CRASH_AT": "after_commit_before_publish",
        "FI_CRASH_SKIP": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -9
    assert done.stdout.split() == ["0", "1", "2"]
