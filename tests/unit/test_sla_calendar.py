"""Business calendars and business-time arithmetic (account.sla.calendar), ARCHITECTURE §3, §8.

Hand examples with explicit UTC instants (Europe/Berlin DST days included), then Hypothesis
properties over random calendars, zones and instants in 2026-2027. The properties proven, for
any calendar with working time, any instant ``s`` and any amounts ``a, b, m >= 0``:

- ``between(s, add(s, m)) == m`` exactly (add then measure gives back the amount);
- ``m1 < m2  =>  add(s, m1) < add(s, m2)`` (strictly monotonic);
- ``add(add(s, a), b) == add(s, a + b)`` — for *all* ``a, b >= 0``, closed times included,
  because ``add`` returns the earliest instant that reaches the amount (a window's end, never
  the next window's start), and ``add(s, 0) == s``;
- ``between(a, b) == -between(b, a)``, ``between(a, a) == 0``,
  ``between(a, b) + between(b, c) == between(a, c)`` for instants in any order;
- a pause ``[p1, p2)`` after ``s`` that starts before the target is reached shifts the due
  instant by exactly its business time: ``add(p2, m - between(s, p1)) ==
  add(s, m + between(p1, p2))``;
- ``between`` agrees with a minute-by-minute count made with nothing but ``zoneinfo``;
- a 24/7 calendar measures real elapsed time in every zone.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account.errors import Invalid
from account.sla.calendar import BusinessCalendar, CalendarError, Window

BERLIN = "Europe/Berlin"
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "Australia/Lord_Howe"]
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def office(zone: str = BERLIN, holidays: tuple[str, ...] = ()) -> BusinessCalendar:
    """09:00-18:00 Monday to Friday."""
    return BusinessCalendar.of(zone, {d: [("09:00", "18:00")] for d in WORKDAYS}, holidays)


def sundays(*windows: tuple[str, str]) -> BusinessCalendar:
    """Berlin, open only on Sundays in the given windows (to look at DST days in isolation)."""
    return BusinessCalendar.of(BERLIN, {"sun": list(windows)})


# --- hand examples: ordinary weeks ----------------------------------------------------------


def test_friday_afternoon_plus_two_hours_is_monday_ten() -> None:
    cal = office()
    friday_17 = utc(2026, 3, 20, 16)  # 17:00 CET
    assert cal.add_business_minutes(friday_17, 120) == utc(2026, 3, 23, 9)  # Mon 10:00 CET


def test_friday_afternoon_plus_two_hours_across_spring_forward_is_monday_ten_summer_time() -> None:
    cal = office()
    friday_17 = utc(2026, 3, 27, 16)  # 17:00 CET
    assert cal.add_business_minutes(friday_17, 120) == utc(2026, 3, 30, 8)  # Mon 10:00 CEST


def test_adding_lands_on_a_window_end_not_the_next_opening() -> None:
    cal = office(zone="UTC")
    assert cal.add_business_minutes(utc(2026, 3, 20, 17), 60) == utc(2026, 3, 20, 18)
    assert cal.next_open(utc(2026, 3, 20, 18)) == utc(2026, 3, 23, 9)


def test_lunch_break_is_skipped() -> None:
    cal = BusinessCalendar.of(
        "UTC", {d: [("13:00", "18:00"), ("09:00", "12:00")] for d in WORKDAYS}
    )
    monday_11 = utc(2026, 3, 2, 11)
    assert cal.add_business_minutes(monday_11, 120) == utc(2026, 3, 2, 14)
    assert cal.add_business_minutes(monday_11, 60) == utc(2026, 3, 2, 12)
    assert cal.business_minutes_between(monday_11, utc(2026, 3, 2, 14)) == 120
    assert not cal.is_open(utc(2026, 3, 2, 12, 30))
    assert cal.next_open(utc(2026, 3, 2, 12, 30)) == utc(2026, 3, 2, 13)
    assert cal.is_open(utc(2026, 3, 2, 13))


def test_holidays_are_skipped() -> None:
    cal = office(holidays=("2026-12-24", "2026-12-25"))
    wednesday_17 = utc(2026, 12, 23, 16)  # 17:00 CET; Thursday and Friday are holidays
    assert cal.add_business_minutes(wednesday_17, 120) == utc(2026, 12, 28, 9)  # Mon 10:00
    assert cal.business_minutes_between(wednesday_17, utc(2026, 12, 28, 9)) == 120
    assert not cal.is_open(utc(2026, 12, 24, 10))


def test_twenty_four_seven_is_real_time() -> None:
    cal = BusinessCalendar.twenty_four_seven(BERLIN)
    start = utc(2026, 3, 28, 23)  # Sunday 00:00 CET, the spring-forward day
    assert cal.add_business_minutes(start, 90) == utc(2026, 3, 29, 0, 30)
    # Local midnight to local midnight is 23 real hours that day, 25 on the fall-back day.
    assert cal.business_minutes_between(start, utc(2026, 3, 29, 22)) == 23 * 60
    assert cal.business_minutes_between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)) == 25 * 60
    assert cal.next_open(start) == start


def test_night_shift_across_midnight_is_one_stretch() -> None:
    shifts: dict[str, list[tuple[str, str]]] = {d: [] for d in (*WORKDAYS, "sat")}
    for d in WORKDAYS:
        shifts[d].append(("22:00", "24:00"))
    for d in ("tue", "wed", "thu", "fri", "sat"):
        shifts[d].append(("00:00", "06:00"))
    cal = BusinessCalendar.of("UTC", shifts)
    monday_23 = utc(2026, 3, 2, 23)
    assert cal.add_business_minutes(monday_23, 120) == utc(2026, 3, 3, 1)
    assert cal.is_open(utc(2026, 3, 3, 0))  # 24:00 Monday is 00:00 Tuesday, open
    assert cal.business_minutes_between(utc(2026, 3, 2, 22), utc(2026, 3, 3, 6)) == 8 * 60
    assert cal.next_open(utc(2026, 3, 3, 6)) == utc(2026, 3, 3, 22)
    # Friday night runs into Saturday morning; Saturday night is closed, so is Sunday.
    assert cal.add_business_minutes(utc(2026, 3, 7, 5), 120) == utc(2026, 3, 9, 23)


def test_minute_precision_is_exact_with_milliseconds() -> None:
    cal = office(zone="UTC")
    start = datetime(2026, 3, 2, 10, 0, 0, 123_000, tzinfo=UTC)
    end = cal.add_business_minutes(start, 7)
    assert end == datetime(2026, 3, 2, 10, 7, 0, 123_000, tzinfo=UTC)
    assert cal.business_minutes_between(start, end) == 7
    assert cal.business_time_between(start, start + timedelta(seconds=1.5)) == timedelta(
        seconds=1.5
    )


def test_naive_instants_are_taken_as_utc_and_results_are_aware_utc() -> None:
    cal = office(zone="UTC")
    result = cal.add_business_minutes(datetime(2026, 3, 2, 10), 30)
    assert result == utc(2026, 3, 2, 10, 30)
    assert result.tzinfo is UTC


def test_a_year_of_business_time_skips_whole_weeks() -> None:
    cal = BusinessCalendar.of("UTC", {d: [("09:00", "17:00")] for d in WORKDAYS})
    monday_9 = utc(2026, 1, 5, 9)
    # 52 full weeks end at the earliest instant reaching them: the Friday 17:00 before.
    assert cal.add_business_minutes(monday_9, 52 * 5 * 480) == utc(2027, 1, 1, 17)
    assert cal.business_minutes_between(monday_9, utc(2027, 1, 4, 9)) == 52 * 5 * 480
    far = cal.add_business_minutes(monday_9, 30 * 52 * 5 * 480)
    assert far.year == 2055
    assert cal.business_minutes_between(monday_9, far) == 30 * 52 * 5 * 480


def test_adding_zero_returns_the_start_even_when_closed() -> None:
    sunday = utc(2026, 3, 1, 12)
    assert office().add_business_minutes(sunday, 0) == sunday


def test_adding_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        office().add_business_time(utc(2026, 3, 2, 10), timedelta(minutes=-1))


def test_a_calendar_without_working_time_refuses_to_add_or_open() -> None:
    closed = BusinessCalendar.of(BERLIN, {})
    assert not closed.has_working_time
    start = utc(2026, 3, 2, 10)
    with pytest.raises(CalendarError, match="no working time"):
        closed.add_business_minutes(start, 1)
    with pytest.raises(CalendarError, match="no working time"):
        closed.next_open(start)
    assert closed.add_business_minutes(start, 0) == start
    assert closed.business_minutes_between(start, utc(2027, 3, 2)) == 0
    assert not closed.is_open(start)


# --- hand examples: Europe/Berlin DST days --------------------------------------------------
# 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z. 2026-10-25: 03:00 CEST falls back to
# 02:00 CET at 01:00Z, so local 02:00-03:00 happens twice (00:00Z-01:00Z and 01:00Z-02:00Z).


def test_spring_forward_window_loses_the_missing_hour() -> None:
    cal = sundays(("01:00", "04:00"))
    opens, closes = utc(2026, 3, 29, 0), utc(2026, 3, 29, 2)  # 01:00 CET, 04:00 CEST
    assert cal.business_minutes_between(utc(2026, 3, 28), utc(2026, 3, 30)) == 120
    assert cal.next_open(utc(2026, 3, 28, 12)) == opens
    assert cal.add_business_minutes(opens, 60) == utc(2026, 3, 29, 1)  # 03:00 CEST
    assert cal.add_business_minutes(opens, 61) == utc(2026, 3, 29, 1, 1)
    assert cal.add_business_minutes(opens, 120) == closes
    assert cal.is_open(utc(2026, 3, 29, 1, 30))  # 03:30 CEST
    assert not cal.is_open(closes)


def test_spring_forward_night_window_is_five_real_hours() -> None:
    cal = sundays(("00:00", "06:00"))
    assert cal.business_minutes_between(utc(2026, 3, 28, 22), utc(2026, 3, 29, 5)) == 5 * 60
    assert cal.add_business_minutes(utc(2026, 3, 28, 23), 120) == utc(2026, 3, 29, 1)


def test_office_hours_on_a_dst_sunday_stay_ten_hours() -> None:
    cal = sundays(("08:00", "18:00"))
    assert cal.business_minutes_between(utc(2026, 3, 29), utc(2026, 3, 30)) == 600
    assert cal.next_open(utc(2026, 3, 29)) == utc(2026, 3, 29, 6)  # 08:00 CEST
    assert cal.business_minutes_between(utc(2026, 10, 25), utc(2026, 10, 26)) == 600
    assert cal.next_open(utc(2026, 10, 25)) == utc(2026, 10, 25, 7)  # 08:00 CET


def test_fall_back_window_counts_the_repeated_hour_twice() -> None:
    cal = sundays(("01:00", "04:00"))
    opens = utc(2026, 10, 24, 23)  # 01:00 CEST
    assert cal.business_minutes_between(utc(2026, 10, 24), utc(2026, 10, 26)) == 240
    assert cal.add_business_minutes(opens, 90) == utc(2026, 10, 25, 0, 30)  # first 02:30
    assert cal.add_business_minutes(opens, 150) == utc(2026, 10, 25, 1, 30)  # second 02:30
    assert cal.add_business_minutes(opens, 240) == utc(2026, 10, 25, 3)  # 04:00 CET


def test_fall_back_window_inside_the_repeated_hour_opens_twice() -> None:
    cal = sundays(("02:30", "02:45"))
    assert cal.business_minutes_between(utc(2026, 10, 24), utc(2026, 10, 26)) == 30
    assert cal.next_open(utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert not cal.is_open(utc(2026, 10, 25, 0, 50))  # 02:50 CEST
    assert cal.next_open(utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 25, 1, 30)  # 02:30 CET
    assert cal.add_business_minutes(utc(2026, 10, 25, 0, 30), 20) == utc(2026, 10, 25, 1, 35)


def test_window_entirely_in_the_missing_hour_does_not_open_that_day() -> None:
    cal = sundays(("02:00", "03:00"))
    assert cal.business_minutes_between(utc(2026, 3, 28), utc(2026, 3, 30)) == 0
    assert cal.next_open(utc(2026, 3, 28)) == utc(2026, 4, 5)  # 02:00 CEST a week later


def test_lord_howe_half_hour_dst_day_is_twenty_four_and_a_half_hours() -> None:
    cal = BusinessCalendar.twenty_four_seven("Australia/Lord_Howe")
    # 2026-04-05 local: +11:00 until 02:00, then +10:30.
    assert cal.business_minutes_between(utc(2026, 4, 4, 13), utc(2026, 4, 5, 13, 30)) == 1470
    office_hours = BusinessCalendar.of("Australia/Lord_Howe", {"sun": [("00:00", "04:00")]})
    assert office_hours.business_minutes_between(utc(2026, 4, 4), utc(2026, 4, 6)) == 270


# --- building, storing, validating ----------------------------------------------------------


def test_calendar_round_trips_through_json() -> None:
    cal = BusinessCalendar.of(
        BERLIN,
        {"mon": [("13:00", "18:00"), ("09:00", "12:00")], "sat": [("22:00", "24:00")]},
        ["2026-12-25", date(2026, 12, 24)],
    )
    stored = json.loads(json.dumps(cal.to_dict()))
    assert stored == {
        "time_zone": BERLIN,
        "weekly": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], "sat": [["22:00", "24:00"]]},
        "holidays": ["2026-12-24", "2026-12-25"],
    }
    assert BusinessCalendar.from_dict(stored) == cal
    assert hash(BusinessCalendar.from_dict(stored)) == hash(cal)


def test_twenty_four_seven_round_trips() -> None:
    cal = BusinessCalendar.twenty_four_seven("Asia/Kolkata")
    assert BusinessCalendar.from_dict(cal.to_dict()) == cal


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"time_zone": "Europe/Berln"}, "unknown time zone 'Europe/Berln'"),
        ({"time_zone": "localtime"}, "machine-specific"),
        ({"time_zone": "right/UTC"}, "machine-specific"),
        ({"time_zone": "../etc/passwd"}, "unknown time zone"),
        ({}, "time_zone is required"),
        ({"time_zone": 3}, "time_zone is required"),
        ({"time_zone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
         "mon: windows 09:00-12:00 and 11:00-13:00 overlap"),
        ({"time_zone": "UTC", "weekly": {"tue": [["18:00", "09:00"]]}},
         "tue: window 18:00-09:00 ends before it starts"),
        ({"time_zone": "UTC", "weekly": {"tue": [["09:00", "09:00"]]}}, "ends before it starts"),
        ({"time_zone": "UTC", "weekly": {"wed": [["9:00", "12:00"]]}}, "bad time '9:00'"),
        ({"time_zone": "UTC", "weekly": {"wed": [["09:00", "24:30"]]}}, "bad time '24:30'"),
        ({"time_zone": "UTC", "weekly": {"wed": [["24:00", "24:00"]]}}, "cannot start at 24:00"),
        ({"time_zone": "UTC", "weekly": {"wed": [["09:00"]]}}, "a window is \\[start, end\\]"),
        ({"time_zone": "UTC", "weekly": {"wed": "09:00-12:00"}}, "list of \\[start, end\\]"),
        ({"time_zone": "UTC", "weekly": {"monday": []}}, "unknown weekday 'monday'"),
        ({"time_zone": "UTC", "weekly": []}, "weekly is an object"),
        ({"time_zone": "UTC", "holidays": ["2026-13-01"]}, "bad holiday '2026-13-01'"),
        ({"time_zone": "UTC", "holidays": ["20261225"]}, "bad holiday '20261225'"),
        ({"time_zone": "UTC", "holidays": "2026-12-25"}, "holidays are a list"),
        ({"time_zone": "UTC", "hours": {}}, "unknown calendar fields: hours"),
        ([], "a calendar is an object"),
    ],
)  # fmt: skip
def test_bad_calendars_are_refused_with_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        BusinessCalendar.from_dict(data)


def test_calendar_errors_are_domain_and_value_errors() -> None:
    with pytest.raises(Invalid) as caught:
        BusinessCalendar.from_dict({"time_zone": "Nowhere/Special"})
    assert isinstance(caught.value, ValueError)
    assert "Nowhere/Special" in caught.value.detail


def test_direct_construction_checks_the_week() -> None:
    with pytest.raises(CalendarError, match="7 days"):
        BusinessCalendar(time_zone="UTC", week=((),) * 6)
    with pytest.raises(CalendarError, match="sorted"):
        BusinessCalendar(time_zone="UTC", week=(((600, 700), (100, 200)),) + ((),) * 6)
    with pytest.raises(CalendarError, match="outside"):
        BusinessCalendar(time_zone="UTC", week=(((0, 1441),),) + ((),) * 6)


# --- properties -----------------------------------------------------------------------------

START_2026 = utc(2026, 1, 1)
SPAN_US = (utc(2028, 1, 1) - START_2026) // timedelta(microseconds=1)
ZONE_CHANGES: dict[str, list[datetime]] = {  # offset changes in 2026-2027, to aim instants at
    "Europe/Berlin": [
        utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2027, 3, 28, 1), utc(2027, 10, 31, 1),
    ],
    "America/New_York": [
        utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2027, 3, 14, 7), utc(2027, 11, 7, 6),
    ],
    "Australia/Lord_Howe": [  # 30 minutes each way
        utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30), utc(2027, 4, 3, 15),
        utc(2027, 10, 2, 15, 30),
    ],
}  # fmt: skip
ALL_CHANGES = [t for changes in ZONE_CHANGES.values() for t in changes]
DST_DATES = sorted({(t + timedelta(hours=h)).date() for t in ALL_CHANGES for h in (-12, 0, 12)})


@st.composite
def days(draw: st.DrawFn) -> tuple[Window, ...]:
    """Up to three windows on quarter-hour boundaries (02:00-03:00 included, DST's hour)."""
    cuts = sorted(draw(st.lists(st.integers(0, 96), unique=True, max_size=6)))
    cuts = cuts[: len(cuts) // 2 * 2]
    return tuple((cuts[i] * 15, cuts[i + 1] * 15) for i in range(0, len(cuts), 2))


WEEKS = st.lists(days(), min_size=7, max_size=7)
HOLIDAYS = st.frozensets(
    st.one_of(st.sampled_from(DST_DATES), st.dates(date(2026, 1, 1), date(2027, 12, 31))),
    max_size=12,
)


@st.composite
def calendars(draw: st.DrawFn, working: bool = True) -> BusinessCalendar:
    """Random windows per weekday, holidays (DST days likely), one of ZONES."""
    week = list(draw(WEEKS))
    if working and not any(week):
        week[draw(st.integers(0, 6))] = ((540, 1080),)
    zone = draw(st.sampled_from(ZONES))
    return BusinessCalendar(time_zone=zone, week=tuple(week), holidays=draw(HOLIDAYS))


def near_changes(zone: str) -> st.SearchStrategy[datetime]:
    """Whole minutes within three days of one of the zone's offset changes."""
    return st.builds(
        lambda t, m: t + timedelta(minutes=m),
        st.sampled_from(ZONE_CHANGES.get(zone, ALL_CHANGES)),
        st.integers(-3 * 1440, 3 * 1440),
    )


def instants(zone: str) -> st.SearchStrategy[datetime]:
    """Anywhere in 2026-2027 to the microsecond, or a whole minute near an offset change."""
    anywhere = st.integers(0, SPAN_US).map(lambda us: START_2026 + timedelta(microseconds=us))
    return st.one_of(anywhere, near_changes(zone))


INSTANTS = {zone: instants(zone) for zone in ZONES}  # built once: building is the slow part
NEAR_CHANGES = {zone: near_changes(zone) for zone in ZONES}


@st.composite
def cases(
    draw: st.DrawFn, count: int, working: bool = True
) -> tuple[BusinessCalendar, list[datetime]]:
    """A calendar and ``count`` instants aimed at its own zone's offset changes."""
    cal = draw(calendars(working=working))
    return cal, [draw(INSTANTS[cal.time_zone]) for _ in range(count)]


minutes = st.integers(0, 6000)
PROPERTY = settings(max_examples=120, deadline=None, database=None)
Case = tuple[BusinessCalendar, list[datetime]]


@PROPERTY
@given(cases(1), minutes)
def test_add_then_measure_gives_back_the_amount(case: Case, m: int) -> None:
    cal, (s,) = case
    end = cal.add_business_minutes(s, m)
    assert end >= s
    assert cal.business_minutes_between(s, end) == m
    assert cal.business_time_between(s, end) == timedelta(minutes=m)


@PROPERTY
@given(cases(1), minutes, minutes)
def test_adding_is_strictly_monotonic(case: Case, m1: int, m2: int) -> None:
    cal, (s,) = case
    m1, m2 = sorted((m1, m2))
    first, second = cal.add_business_minutes(s, m1), cal.add_business_minutes(s, m2)
    assert first <= second
    assert (first < second) == (m1 < m2)


@PROPERTY
@given(cases(1), minutes, minutes)
def test_adding_in_two_steps_equals_adding_at_once(case: Case, a: int, b: int) -> None:
    cal, (s,) = case
    step = cal.add_business_minutes(s, a)
    assert cal.add_business_minutes(step, b) == cal.add_business_minutes(s, a + b)


@PROPERTY
@given(cases(3, working=False))
def test_between_is_antisymmetric_and_additive(case: Case) -> None:
    cal, (a, b, c) = case
    between = cal.business_time_between
    assert between(a, a) == timedelta(0)
    assert between(a, b) == -between(b, a)
    assert between(a, b) + between(b, c) == between(a, c)
    if a <= b:
        assert between(a, b) >= timedelta(0)


@PROPERTY
@given(cases(1), st.integers(0, 3000), st.integers(0, 3000), st.integers(1, 3000))
def test_a_pause_shifts_the_due_instant_by_exactly_its_business_time(
    case: Case, before: int, length: int, target_minutes: int
) -> None:
    # A pause [p1, p2) after s; its real length and position are random, its business time not.
    cal, (s,) = case
    target = timedelta(minutes=target_minutes)
    p1 = s + timedelta(minutes=before)
    p2 = p1 + timedelta(minutes=length)
    done = cal.business_time_between(s, p1)
    if done >= target:
        return  # the target was reached before the pause began: nothing to shift
    paused = cal.business_time_between(p1, p2)
    resumed_due = cal.add_business_time(p2, target - done)
    assert resumed_due == cal.add_business_time(s, target + paused)
    assert cal.business_time_between(s, resumed_due) - paused == target


@PROPERTY
@given(cases(1))
def test_next_open_is_the_first_open_instant(case: Case) -> None:
    cal, (s,) = case
    opening = cal.next_open(s)
    assert opening >= s
    assert cal.is_open(opening)
    assert cal.business_time_between(s, opening) == timedelta(0)
    assert (opening == s) == cal.is_open(s)
    # Adding a positive amount from a closed instant is adding from its next opening.
    assert cal.add_business_minutes(s, 7) == cal.add_business_minutes(opening, 7)


@st.composite
def counted(draw: st.DrawFn) -> tuple[BusinessCalendar, datetime]:
    cal = draw(calendars(working=False))
    return cal, draw(NEAR_CHANGES[cal.time_zone])


@settings(max_examples=60, deadline=None, database=None)
@given(counted(), st.integers(0, 3 * 1440))
def test_between_agrees_with_counting_minutes_in_zoneinfo(
    case: tuple[BusinessCalendar, datetime], span: int
) -> None:
    cal, s = case
    zone = ZoneInfo(cal.time_zone)
    count = 0
    for i in range(span):
        moment = s + timedelta(minutes=i)
        local = moment.astimezone(zone)
        minute = local.hour * 60 + local.minute
        opened = local.date() not in cal.holidays and any(
            a <= minute < b for a, b in cal.week[local.weekday()]
        )
        assert cal.is_open(moment) == opened
        count += opened
    assert cal.business_minutes_between(s, s + timedelta(minutes=span)) == count


@settings(max_examples=60, deadline=None, database=None)
@given(st.sampled_from(ZONES).flatmap(lambda z: st.tuples(st.just(z), INSTANTS[z], INSTANTS[z])))
def test_twenty_four_seven_measures_real_time_in_every_zone(
    case: tuple[str, datetime, datetime],
) -> None:
    zone, a, b = case
    cal = BusinessCalendar.twenty_four_seven(zone)
    assert cal.business_time_between(a, b) == b - a
    if a <= b:
        assert cal.add_business_time(a, b - a) == b
