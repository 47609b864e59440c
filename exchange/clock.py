"""Instants: aware UTC datetimes in code and tables, RFC 3339 with milliseconds on the wire."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

# Test-only controllable clock: with ``TIX_FAULT_INJECTION=1`` and ``TIX_CLOCK_OFFSET_FILE``
# naming a file that holds a number of seconds, ``utcnow`` runs that far ahead of the wall clock
# (several node processes share one file, so a test moves all their clocks at once). The file is
# read on every call, so no node can act on a new offset while another still runs on the old one
# (with a cache, a node could send an envelope dated by the new offset to a partner whose clock
# had not moved yet, which refused it as ``future_sent_at``); a file caught half-written (empty
# or not a number) keeps the last value read. In any other configuration this costs one
# dictionary lookup.
_last_offset: list[float] = [0.0]


def _offset() -> timedelta:
    if os.environ.get("TIX_FAULT_INJECTION") != "1":
        return timedelta(0)
    path = os.environ.get("TIX_CLOCK_OFFSET_FILE")
    if not path:
        return timedelta(0)
    try:
        with open(path) as fh:
            _last_offset[0] = float(fh.read().strip())
    except (OSError, ValueError):
        pass
    return timedelta(seconds=_last_offset[0])


def utcnow() -> datetime:
    """Now, as an aware UTC datetime truncated to milliseconds (what the wire can carry)."""
    now = datetime.now(UTC) + _offset()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def aware(moment: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive ones are taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def instant(moment: datetime) -> str:
    """``2026-11-22T08:00:00.000Z`` for a datetime (naive ones are taken to be UTC)."""
    moment = aware(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_instant(text: str) -> datetime:
    """The aware UTC datetime of an RFC 3339 instant ending in ``Z``."""
    if not text.endswith("Z"):
        raise ValueError("instants are UTC and end in Z")
    return datetime.fromisoformat(text[:-1] + "+00:00").astimezone(UTC)
