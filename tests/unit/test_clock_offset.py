"""The test-only clock offset (``exchange.clock``) that moves several node processes at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exchange import clock


def test_without_fault_injection_the_file_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offset = tmp_path / "offset"
    offset.write_text(str(3600))
    monkeypatch.delenv("TIX_FAULT_INJECTION", raising=False)
    monkeypatch.setenv("TIX_CLOCK_OFFSET_FILE", str(offset))
    assert abs(clock.utcnow() - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_new_offset_applies_to_the_very_next_reading_and_a_half_written_file_keeps_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offset = tmp_path / "offset"
    offset.write_text("0")
    monkeypatch.setenv("TIX_FAULT_INJECTION", "1")
    monkeypatch.setenv("TIX_CLOCK_OFFSET_FILE", str(offset))
    assert abs(clock.utcnow() - datetime.now(UTC)) < timedelta(minutes=1)

    offset.write_text(str(50 * 60))  # no waiting: another node may already run on it
    assert clock.utcnow() - datetime.now(UTC) > timedelta(minutes=49)

    offset.write_text("")  # caught between truncation and write
    assert clock.utcnow() - datetime.now(UTC) > timedelta(minutes=49)

    offset.write_text("0")
    assert abs(clock.utcnow() - datetime.now(UTC)) < timedelta(minutes=1)
