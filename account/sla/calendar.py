"""Business calendars and business-time arithmetic (ARCHITECTURE §3, §8). Pure: no I/O.

A calendar is an IANA time zone, weekly working windows in local wall-clock time (several per
day, ``"24:00"`` allowed as an end, so ``22:00-24:00`` on Monday and ``00:00-06:00`` on Tuesday
make one night shift) and holidays as local dates (a holiday closes every window of that date).

**What counts.** An instant is *open* when its local wall-clock reading falls in a window
``[start, end)`` of its local date and that date is not a holiday. Business time between two
instants is the real (UTC) time during which the calendar is open. Windows are wall-clock
times, so on a DST change: a window crossing a local hour that does not exist (spring forward)
loses it; a window crossing a repeated local hour (fall back) counts it twice, in real time.
In Europe/Berlin, ``00:00-06:00`` is 5 real hours on 2026-03-29 and 7 on 2026-10-25, while
``08:00-18:00`` stays 10 (the change is at 02:00/03:00). A 24/7 calendar therefore measures
exactly the real elapsed time, in every zone.

**Arithmetic.** ``add_business_time(s, d)`` is the *earliest* instant ``t >= s`` with
``business_time_between(s, t) == d``: it lands at a window's end rather than the next window's
start, and ``d == 0`` returns ``s`` even when closed. From that definition: adding then measuring
gives back the amount, adding is strictly monotonic in the amount, and
``add(add(s, a), b) == add(s, a + b)`` for all ``a, b >= 0``. ``business_time_between`` is signed
(``between(b, a) == -between(a, b)``) and additive (``between(a, b) + between(b, c) ==
between(a, c)``), so a pause subtracts exactly its own business time.

**Precision.** Internally everything is integer microseconds (what ``datetime`` carries), so no
rounding happens anywhere. The API speaks whole minutes in (``add_business_minutes``) and float
minutes out (``business_minutes_between``: microseconds / 60e6, correctly rounded, so exact
whenever the result is a whole number of minutes); ``add_business_time`` and
``business_time_between`` take and give the exact ``timedelta``. Naive datetimes are taken to be
UTC, as in ``exchange.clock``; results are aware UTC.

**How.** Between two UTC-offset changes the wall clock runs at real speed, so business time over
a real interval is ``F(end + offset) - F(start + offset)`` where ``F`` is cumulative wall-clock
business time since 0001-01-01 — computed in O(log holidays) from whole weeks, the day's windows
and a prefix sum over holidays. Offset changes come from ``zoneinfo`` by probing each UTC day of a
year and bisecting to the second (cached per zone and year: about a millisecond the first time).
Adding searches days by galloping, so a span of years costs a few dozen steps plus one per offset
change crossed (tens of microseconds), never a walk through every day.

**Limits.** Two offset changes less than a day apart that cancel out are not seen (the tz
database has no such pair since 1970). Instants must lie within years 2-9998.
A calendar without any weekly window has no working time: adding to it or asking for its next
opening raises ``CalendarError`` rather than search forever; holidays are finite, so any other
calendar always opens again. The zone database is the system's (``/usr/share/zoneinfo``) unless
the ``tzdata`` package is installed; a node without either cannot load a calendar.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from account.errors import Invalid
from exchange.clock import aware

__all__ = ["WEEKDAYS", "BusinessCalendar", "CalendarError", "Window"]

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Window = tuple[int, int]
"""A working window as minutes since local midnight: ``0 <= start < end <= 1440``."""

_US_PER_MINUTE: Final = 60_000_000
_US_PER_SECOND: Final = 1_000_000
_DAY: Final = 1440 * _US_PER_MINUTE
_EPOCH: Final = datetime(1, 1, 1, tzinfo=UTC)  # a Monday, so day index % 7 is the weekday
_ONE_US: Final = timedelta(microseconds=1)
_TIME: Final = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d|24:00")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNPORTABLE_ZONES: Final = ("localtime", "posixrules")  # mean different things on each machine


class CalendarError(Invalid, ValueError):
    """A calendar that cannot be built, or cannot answer (no working time at all)."""

    default_detail = "invalid business calendar"


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working windows of a week in one time zone, minus holidays."""

    time_zone: str
    week: tuple[tuple[Window, ...], ...]  # seven entries, Monday first; windows sorted
    holidays: frozenset[date] = frozenset()

    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _windows_us: tuple[tuple[tuple[int, int], ...], ...] = field(
        init=False, repr=False, compare=False
    )
    _cum_us: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _holiday_days: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _holiday_prefix: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: derived fields are written once, here
        set_(self, "_zone", _load_zone(self.time_zone))
        if len(self.week) != 7:
            raise CalendarError(f"a week has 7 days, got {len(self.week)}")
        for name, windows in zip(WEEKDAYS, self.week, strict=True):
            _check_day(name, windows)
        windows_us = tuple(
            tuple((s * _US_PER_MINUTE, e * _US_PER_MINUTE) for s, e in day) for day in self.week
        )
        day_totals = [sum(e - s for s, e in day) for day in windows_us]
        cum = [0]
        for total in day_totals:
            cum.append(cum[-1] + total)
        holiday_days = sorted(d.toordinal() - 1 for d in self.holidays)
        prefix = [0]
        for day in holiday_days:
            prefix.append(prefix[-1] + day_totals[day % 7])
        set_(self, "_windows_us", windows_us)
        set_(self, "_cum_us", tuple(cum))
        set_(self, "_holiday_days", tuple(holiday_days))
        set_(self, "_holiday_prefix", tuple(prefix))

    # --- building and storing ------------------------------------------------------------------

    @classmethod
    def of(
        cls,
        time_zone: str,
        weekly: Mapping[str, Iterable[tuple[str, str]]],
        holidays: Iterable[date | str] = (),
    ) -> BusinessCalendar:
        """A calendar from ``{"mon": [("09:00", "12:00"), ("13:00", "18:00")], ...}``."""
        week: list[list[Window]] = [[] for _ in WEEKDAYS]
        for key, windows in weekly.items():
            if key not in WEEKDAYS:
                raise CalendarError(f"unknown weekday {key!r} (use one of {', '.join(WEEKDAYS)})")
            for pair in windows:
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    raise CalendarError(f"{key}: a window is [start, end], got {pair!r}")
                start, end = pair
                window = (_parse_time(start, f"{key} start"), _parse_time(end, f"{key} end"))
                if window[0] == 1440:
                    raise CalendarError(f"{key}: a window cannot start at 24:00")
                week[WEEKDAYS.index(key)].append(window)
        return cls(
            time_zone=time_zone,
            week=tuple(tuple(sorted(day)) for day in week),
            holidays=frozenset(_parse_date(h) for h in holidays),
        )

    @classmethod
    def twenty_four_seven(cls, time_zone: str = "UTC") -> BusinessCalendar:
        """Always open: business time is real elapsed time."""
        return cls(time_zone=time_zone, week=(((0, 1440),),) * 7)

    @classmethod
    def from_dict(cls, data: Any) -> BusinessCalendar:
        """The calendar stored in a contract as JSON (see ``to_dict``), validated."""
        if not isinstance(data, Mapping):
            raise CalendarError("a calendar is an object with time_zone, weekly, holidays")
        unknown = set(data) - {"time_zone", "weekly", "holidays"}
        if unknown:
            raise CalendarError(f"unknown calendar fields: {', '.join(sorted(map(str, unknown)))}")
        zone = data.get("time_zone")
        if not isinstance(zone, str):
            raise CalendarError("time_zone is required, as an IANA name like 'Europe/Berlin'")
        weekly = data.get("weekly", {})
        if not isinstance(weekly, Mapping):
            raise CalendarError('weekly is an object like {"mon": [["09:00", "18:00"]]}')
        for key, windows in weekly.items():
            if not isinstance(windows, list):
                raise CalendarError(f"{key}: windows are a list of [start, end] pairs")
        holidays = data.get("holidays", [])
        if not isinstance(holidays, list):
            raise CalendarError("holidays are a list of dates like '2026-12-25'")
        return cls.of(zone, weekly, holidays)

    def to_dict(self) -> dict[str, Any]:
        """JSON for a contract: zone, non-empty days' windows as ``"HH:MM"``, sorted holidays."""
        return {
            "time_zone": self.time_zone,
            "weekly": {
                name: [[_format_time(s), _format_time(e)] for s, e in day]
                for name, day in zip(WEEKDAYS, self.week, strict=True)
                if day
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    @property
    def has_working_time(self) -> bool:
        """Whether any weekly window exists (holidays are finite, so it then always reopens)."""
        return self._cum_us[7] > 0

    # --- queries on instants -------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        """Whether the instant falls in a working window of a working day."""
        t = _us(at)
        day, tod = divmod(t + self._offset(t), _DAY)
        if self._is_holiday(day):
            return False
        return any(s <= tod < e for s, e in self._windows_us[day % 7])

    def next_open(self, at: datetime) -> datetime:
        """The earliest open instant at or after ``at`` (``at`` itself when open)."""
        self._require_working_time()
        t = _us(at)
        while True:
            offset = self._offset(t)
            candidate = self._wall_next_open(t + offset) - offset
            change = self._first_change(t, candidate + 1)
            if change is None:
                return _dt(candidate)
            t = change  # the opening lay past an offset change: look again from there

    def add_business_minutes(self, start: datetime, minutes: int) -> datetime:
        """The earliest instant with ``minutes`` of business time since ``start``."""
        return self.add_business_time(start, timedelta(minutes=minutes))

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant with ``amount`` of business time since ``start``."""
        if amount < timedelta(0):
            raise ValueError("cannot add a negative business time")
        return _dt(self._add(_us(start), amount // _ONE_US))

    def business_minutes_between(self, a: datetime, b: datetime) -> float:
        """Business minutes from ``a`` to ``b``; negative when ``b`` is before ``a``."""
        return self._between(_us(a), _us(b)) / _US_PER_MINUTE

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Business time from ``a`` to ``b``, exact; negative when ``b`` is before ``a``."""
        return timedelta(microseconds=self._between(_us(a), _us(b)))

    # --- UTC side: split at offset changes -----------------------------------------------------

    def _offset(self, t: int) -> int:
        return _offset_us(self._zone, t)

    def _first_change(self, after: int, before: int) -> int | None:
        """The first offset change strictly between two UTC instants (µs)."""
        for year in range(_dt(after).year, _dt(before).year + 1):
            for change in _year_changes(self.time_zone, year):
                if after < change < before:
                    return change
                if change >= before:
                    return None
        return None

    def _between(self, a: int, b: int) -> int:
        if a > b:
            return -self._between(b, a)
        total = 0
        while True:
            offset = self._offset(a)
            change = self._first_change(a, b)
            end = b if change is None else change
            total += self._wall_measure(end + offset) - self._wall_measure(a + offset)
            if change is None:
                return total
            a = change

    def _add(self, start: int, amount: int) -> int:
        if amount == 0:
            return start
        self._require_working_time()
        t = start
        while True:
            offset = self._offset(t)
            base = self._wall_measure(t + offset)
            candidate = self._wall_solve(base + amount, t + offset) - offset
            change = self._first_change(t, candidate)
            if change is None:
                return candidate
            # The offset changes before the amount is reached: bank this stretch, go on.
            amount -= self._wall_measure(change + offset) - base
            t = change

    # --- wall-clock side: cumulative business time since 0001-01-01 local ---------------------

    def _is_holiday(self, day: int) -> bool:
        i = bisect_left(self._holiday_days, day)
        return i < len(self._holiday_days) and self._holiday_days[i] == day

    def _partial(self, weekday: int, tod: int) -> int:
        return sum(min(max(tod - s, 0), e - s) for s, e in self._windows_us[weekday])

    def _wall_measure(self, wall: int) -> int:
        """Business time (µs) in local wall-clock time from 0001-01-01 00:00 to ``wall``."""
        day, tod = divmod(wall, _DAY)
        week, weekday = divmod(day, 7)
        part = self._partial(weekday, tod)
        i = bisect_left(self._holiday_days, day)
        total = week * self._cum_us[7] + self._cum_us[weekday] + part - self._holiday_prefix[i]
        if i < len(self._holiday_days) and self._holiday_days[i] == day:
            total -= part
        return total

    def _end_of_day(self, day: int) -> int:
        return self._wall_measure((day + 1) * _DAY)

    def _first_day_reaching(self, target: int, from_day: int) -> int:
        """The first day ``>= from_day`` by whose end ``target`` is reached (gallop, bisect)."""
        lo, step = from_day - 1, 1  # invariant: the day lo ends below target
        hi = from_day
        while self._end_of_day(hi) < target:
            lo, step = hi, step * 2
            hi = from_day + step
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._end_of_day(mid) < target:
                lo = mid
            else:
                hi = mid
        return hi

    def _wall_solve(self, target: int, wall: int) -> int:
        """The earliest wall time ``>= wall`` at which the measure reaches ``target``."""
        day = self._first_day_reaching(target, wall // _DAY)
        remaining = target - self._wall_measure(day * _DAY)
        for s, e in self._windows_us[day % 7]:
            if remaining <= e - s:
                return day * _DAY + s + remaining
            remaining -= e - s
        raise RuntimeError("business-time search overran a day")  # unreachable by construction

    def _wall_next_open(self, wall: int) -> int:
        day, tod = divmod(wall, _DAY)
        if not self._is_holiday(day):
            for s, e in self._windows_us[day % 7]:
                if e > tod:
                    return day * _DAY + max(s, tod)
        day = self._first_day_reaching(self._end_of_day(day) + 1, day + 1)
        return day * _DAY + self._windows_us[day % 7][0][0]

    def _require_working_time(self) -> None:
        if not self.has_working_time:
            raise CalendarError("the calendar has no working time: no weekly window is open")


# --- helpers ------------------------------------------------------------------------------------


def _us(moment: datetime) -> int:
    return (aware(moment) - _EPOCH) // _ONE_US


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _offset_us(zone: ZoneInfo, t: int) -> int:
    offset = _dt(t).astimezone(zone).utcoffset()
    return 0 if offset is None else offset // _ONE_US


@lru_cache(maxsize=2048)
def _year_changes(time_zone: str, year: int) -> tuple[int, ...]:
    """UTC instants (µs) in a UTC year at which the zone's offset changes."""
    zone = ZoneInfo(time_zone)
    t = (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
    end = (datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
    offset = _offset_us(zone, t)
    changes: list[int] = []
    while t < end:
        probe = min(t + _DAY, end)
        if _offset_us(zone, probe) == offset:
            t = probe
            continue
        # Bisect in whole seconds: the tz database's transitions fall on whole seconds.
        lo, hi = t // _US_PER_SECOND, probe // _US_PER_SECOND
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _offset_us(zone, mid * _US_PER_SECOND) == offset:
                lo = mid
            else:
                hi = mid
        t = hi * _US_PER_SECOND
        changes.append(t)
        offset = _offset_us(zone, t)
    return tuple(changes)


def _load_zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise CalendarError("time_zone is required, as an IANA name like 'Europe/Berlin'")
    if name in _UNPORTABLE_ZONES or name.startswith(("posix/", "right/")):
        raise CalendarError(f"time zone {name!r} is machine-specific; use an IANA name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError(f"unknown time zone {name!r}") from None


def _check_day(name: str, windows: tuple[Window, ...]) -> None:
    previous: Window | None = None
    for window in windows:
        if (
            not isinstance(window, tuple)
            or len(window) != 2
            or not all(isinstance(m, int) and not isinstance(m, bool) for m in window)
        ):
            raise CalendarError(f"{name}: a window is two minute counts, got {window!r}")
        start, end = window
        if not 0 <= start < 1440 or not 0 < end <= 1440:
            raise CalendarError(f"{name}: window {window!r} lies outside 00:00-24:00")
        if end <= start:
            raise CalendarError(
                f"{name}: window {_format_time(start)}-{_format_time(end)} ends before it starts"
                " (a night shift is two windows: 22:00-24:00 and 00:00-06:00 the next day)"
            )
        if previous is not None:
            if start < previous[0]:
                raise CalendarError(f"{name}: windows must be sorted by start")
            if start < previous[1]:
                raise CalendarError(
                    f"{name}: windows {_format_time(previous[0])}-{_format_time(previous[1])}"
                    f" and {_format_time(start)}-{_format_time(end)} overlap"
                )
        previous = window


def _parse_time(text: object, where: str) -> int:
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise CalendarError(f"{where}: bad time {text!r} (expected HH:MM, 00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_date(value: date | str) -> date:
    if isinstance(value, datetime):
        raise CalendarError(f"a holiday is a local date, not an instant: {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise CalendarError(f"bad holiday {value!r} (expected a date like 2026-12-25)")
