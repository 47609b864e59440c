"""Small statistics for reports, pure: medians, percentiles, percentages, minutes between."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from exchange.clock import aware

__all__ = ["mean", "median", "minutes_between", "pct", "percentile"]


def minutes_between(a: datetime, b: datetime) -> float:
    """Wall-clock minutes from ``a`` to ``b`` (never negative: skew between nodes is clamped)."""
    return max((aware(b) - aware(a)).total_seconds() / 60, 0.0)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p ≤ 100): a value that occurred; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return round(ordered[rank - 1], 2)


def median(values: Sequence[float]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return round(ordered[middle], 2)
    return round((ordered[middle - 1] + ordered[middle]) / 2, 2)


def pct(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent, one decimal; None when there is nothing to divide."""
    if whole <= 0:
        return None
    return round(100 * part / whole, 1)


def mean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return round(sum(values) / len(values), 2)
