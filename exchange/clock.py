"""Instants: aware UTC datetimes in code and tables, RFC 3339 with milliseconds on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC datetime truncated to milliseconds (what the wire can carry)."""
    now = datetime.now(UTC)
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
