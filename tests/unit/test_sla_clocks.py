"""SLA policies and clocks (account.sla.clocks), ARCHITECTURE §8: response and resolution
clocks, holds, rework restart vs continue, the 75 % and 100 % instants, squeeze."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from account.errors import Invalid
from account.sla.calendar import BusinessCalendar
from account.sla.clocks import (
    Hold,
    PolicyError,
    Rework,
    SlaHistory,
    SlaPolicy,
    Targets,
    evaluate,
    squeeze,
)
from schemas.common import Priority

WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE = BusinessCalendar.of("UTC", {d: [("09:00", "17:00")] for d in WORKDAYS})  # 480 min a day


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in the week of Monday 2026-03-02 (day 2) in UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


MON, TUE, WED = 2, 3, 4


def build_policy(
    rework: str = "restart", calendar: BusinessCalendar = OFFICE, **minutes: int
) -> SlaPolicy:
    return SlaPolicy.from_dict(
        {
            "calendar": calendar.to_dict(),
            "targets": {
                "high": {
                    "response_minutes": minutes.get("response", 60),
                    "resolution_minutes": minutes.get("resolution", 480),
                }
            },
            "rework": rework,
        }
    )


# --- response ---------------------------------------------------------------------------------


def test_response_clock_runs_from_the_offer() -> None:
    history = SlaHistory(offered_at=at(MON, 10))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 10, 30))
    response = clock.response
    assert response is not None
    assert response.state == "ok"
    assert response.elapsed_minutes == 30
    assert response.fraction == 0.5
    assert response.remaining == timedelta(minutes=30)
    assert response.warn_at == at(MON, 10, 45)
    assert response.due_at == at(MON, 11)
    assert response.next_change_at == at(MON, 10, 45)
    assert response.reached == ()
    assert not response.paused


def test_response_is_at_risk_from_75_percent_and_breached_from_100() -> None:
    history = SlaHistory(offered_at=at(MON, 10))
    risky = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 10, 45))
    assert risky.response is not None
    assert risky.response.state == "at_risk"
    assert risky.response.next_change_at == at(MON, 11)
    assert risky.response.reached == ("warning",)
    late = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 11))
    assert late.response is not None
    assert late.response.state == "breached"
    assert late.response.next_change_at is None
    assert late.response.reached == ("warning", "breach")


def test_accepting_stops_the_response_clock() -> None:
    history = SlaHistory(offered_at=at(MON, 10), accepted_at=at(MON, 10, 50))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(TUE, 15))
    assert clock.response is not None
    assert clock.response.state == "met"
    assert clock.response.elapsed_minutes == 50
    assert clock.response.stopped_at == at(MON, 10, 50)
    assert clock.response.due_at == at(MON, 11)
    assert clock.response.next_change_at is None
    assert clock.response.reached == ("warning",)


@pytest.mark.parametrize(
    ("accepted", "state"),
    [(at(MON, 11), "met"), (at(MON, 11, 1), "breached"), (at(MON, 18), "breached")],
)
def test_accepting_at_the_due_instant_meets_the_target_and_later_does_not(
    accepted: datetime, state: str
) -> None:
    # 18:00 is closed time: no more business time has passed, but the due instant has.
    history = SlaHistory(offered_at=at(MON, 10), accepted_at=accepted)
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(TUE, 12))
    assert clock.response is not None
    assert clock.response.state == state


def test_an_offer_late_in_the_day_is_due_the_next_morning() -> None:
    history = SlaHistory(offered_at=at(MON, 16, 30))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 20))
    assert clock.response is not None
    assert clock.response.elapsed_minutes == 30
    assert clock.response.warn_at == at(TUE, 9, 15)
    assert clock.response.due_at == at(TUE, 9, 30)
    assert clock.next_change_at == at(TUE, 9, 15)


def test_an_acceptance_stamped_before_the_offer_counts_as_immediate() -> None:
    history = SlaHistory(offered_at=at(MON, 10), accepted_at=at(MON, 9, 59))  # clock skew
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 12))
    assert clock.response is not None
    assert clock.response.state == "met"
    assert clock.response.elapsed == timedelta(0)


def test_a_clock_not_started_yet_waits_for_its_start() -> None:
    history = SlaHistory(offered_at=at(MON, 10))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 9))
    assert clock.response is not None
    assert clock.response.state == "ok"
    assert clock.response.elapsed == timedelta(0)
    assert clock.response.next_change_at == at(MON, 10, 45)


# --- resolution and holds ---------------------------------------------------------------------


def test_resolution_clock_without_holds_is_due_after_one_business_day() -> None:
    history = SlaHistory(offered_at=at(MON, 9), accepted_at=at(MON, 9, 10))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 10))
    assert clock.resolution is not None
    assert clock.resolution.due_at == at(MON, 17)
    assert clock.resolution.warn_at == at(MON, 15)
    assert clock.next_change_at == at(MON, 15)  # the response clock is met and stays so


def test_a_hold_shifts_the_due_instant_by_its_business_time() -> None:
    history = SlaHistory(
        offered_at=at(MON, 9), accepted_at=at(MON, 9, 10), holds=(Hold(at(MON, 10), at(MON, 12)),)
    )
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 13))
    resolution = clock.resolution
    assert resolution is not None
    assert resolution.elapsed_minutes == 120
    assert resolution.due_at == at(TUE, 11)  # 17:00 Monday + the two held hours
    assert resolution.warn_at == at(MON, 17)  # 360 running minutes end with Monday's window
    assert resolution.next_change_at == at(MON, 17)


def test_an_open_hold_pauses_the_clock_without_a_due_instant() -> None:
    history = SlaHistory(offered_at=at(MON, 9), holds=(Hold(at(MON, 10)),))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(TUE, 16))
    for running in (clock.response, clock.resolution):
        assert running is not None
        assert running.paused
        assert running.elapsed_minutes == 60
        assert running.due_at is None
        assert running.next_change_at is None
    assert clock.response is not None and clock.response.state == "breached"
    assert clock.resolution is not None and clock.resolution.state == "ok"
    assert clock.resolution.remaining == timedelta(minutes=420)
    assert clock.next_change_at is None


def test_resuming_after_a_hold_over_night_counts_only_business_time_held() -> None:
    history = SlaHistory(offered_at=at(MON, 9), holds=(Hold(at(MON, 16), at(TUE, 10)),))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(TUE, 10))
    assert clock.resolution is not None
    assert not clock.resolution.paused
    assert clock.resolution.elapsed_minutes == 420
    assert clock.resolution.due_at == at(TUE, 11)


def test_holds_and_reworks_may_be_plain_pairs() -> None:
    history = SlaHistory(
        offered_at=at(MON, 9),
        holds=((at(MON, 10), None),),  # type: ignore[arg-type]  # what an untyped caller sends
        reworks=((at(MON, 9, 30), at(MON, 9, 45)),),  # type: ignore[arg-type]
    )
    assert history.holds == (Hold(at(MON, 10), None),)
    assert history.reworks[0].reworked_at == at(MON, 9, 45)


def test_overlapping_holds_pause_once() -> None:
    holds = (Hold(at(MON, 10), at(MON, 12)), Hold(at(MON, 11), at(MON, 13)))
    history = SlaHistory(offered_at=at(MON, 9), holds=holds)
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 14))
    assert clock.resolution is not None
    assert clock.resolution.elapsed_minutes == 120


def test_resolving_stops_the_resolution_clock() -> None:
    history = SlaHistory(offered_at=at(MON, 9), accepted_at=at(MON, 9), resolved_at=at(MON, 16))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(WED, 9))
    assert clock.resolution is not None
    assert clock.resolution.state == "met"
    assert clock.resolution.elapsed_minutes == 420


# --- rework -----------------------------------------------------------------------------------

# Resolved Monday 15:00 (360 of 480 minutes used), sent back Tuesday 09:00.
SENT_BACK = Rework(resolved_at=at(MON, 15), reworked_at=at(TUE, 9))


def test_rework_restart_gives_a_fresh_resolution_clock() -> None:
    history = SlaHistory(offered_at=at(MON, 9), accepted_at=at(MON, 9), reworks=(SENT_BACK,))
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(TUE, 12))
    assert clock.resolution is not None
    assert clock.resolution.started_at == at(TUE, 9)
    assert clock.resolution.elapsed_minutes == 180
    assert clock.resolution.state == "ok"
    assert clock.resolution.due_at == at(TUE, 17)
    assert clock.resolution.next_change_at == at(TUE, 15)


def test_rework_continue_resumes_and_skips_the_time_spent_resolved() -> None:
    history = SlaHistory(offered_at=at(MON, 9), accepted_at=at(MON, 9), reworks=(SENT_BACK,))
    clock = evaluate(
        policy=build_policy("continue"), priority="high", history=history, now=at(TUE, 12)
    )
    assert clock.resolution is not None
    assert clock.resolution.started_at == at(MON, 9)
    assert clock.resolution.elapsed_minutes == 360 + 180  # not Monday 15:00-17:00
    assert clock.resolution.state == "breached"
    assert clock.resolution.due_at == at(TUE, 11)


@pytest.mark.parametrize(
    ("rework", "state", "elapsed"), [("restart", "met", 300), ("continue", "breached", 660)]
)
def test_a_second_resolution_after_rework_stops_the_clock_again(
    rework: str, state: str, elapsed: int
) -> None:
    history = SlaHistory(
        offered_at=at(MON, 9), accepted_at=at(MON, 9), reworks=(SENT_BACK,), resolved_at=at(TUE, 14)
    )
    clock = evaluate(policy=build_policy(rework), priority="high", history=history, now=at(WED, 9))
    assert clock.resolution is not None
    assert clock.resolution.state == state
    assert clock.resolution.elapsed_minutes == elapsed


def test_history_is_read_as_of_now() -> None:
    # At Monday 16:00 the resolution of 15:00 stood; it was sent back only on Tuesday.
    history = SlaHistory(
        offered_at=at(MON, 9),
        accepted_at=at(MON, 9, 30),
        reworks=(SENT_BACK,),
        resolved_at=at(TUE, 14),
    )
    clock = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 16))
    assert clock.resolution is not None
    assert clock.resolution.state == "met"
    assert clock.resolution.stopped_at == at(MON, 15)
    assert clock.resolution.elapsed_minutes == 360
    earlier = evaluate(policy=build_policy(), priority="high", history=history, now=at(MON, 9, 5))
    assert earlier.response is not None and earlier.response.state == "ok"
    assert earlier.response.stopped_at is None


# --- calendars with DST -----------------------------------------------------------------------


def test_a_berlin_response_over_the_spring_forward_weekend() -> None:
    berlin = BusinessCalendar.of("Europe/Berlin", {d: [("09:00", "18:00")] for d in WORKDAYS})
    friday_17 = datetime(2026, 3, 27, 16, tzinfo=UTC)  # 17:00 CET
    history = SlaHistory(offered_at=friday_17)
    policy = build_policy(calendar=berlin, response=120)
    clock = evaluate(policy=policy, priority="high", history=history, now=friday_17)
    assert clock.response is not None
    assert clock.response.warn_at == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)  # Mon 09:30 CEST
    assert clock.response.due_at == datetime(2026, 3, 30, 8, tzinfo=UTC)  # Mon 10:00 CEST


def test_a_day_on_a_berlin_24_7_calendar_is_24_real_hours_across_dst() -> None:
    policy = build_policy(
        calendar=BusinessCalendar.twenty_four_seven("Europe/Berlin"), resolution=24 * 60
    )
    history = SlaHistory(offered_at=datetime(2026, 3, 28, 11, tzinfo=UTC))  # noon CET
    clock = evaluate(policy=policy, priority="high", history=history, now=history.offered_at)
    assert clock.resolution is not None
    assert clock.resolution.due_at == datetime(2026, 3, 29, 11, tzinfo=UTC)  # 13:00 CEST


# --- policy -----------------------------------------------------------------------------------


def test_priorities_without_targets_have_no_clocks() -> None:
    policy = SlaPolicy(calendar=OFFICE, targets={"normal": Targets(resolution_minutes=960)})
    history = SlaHistory(offered_at=at(MON, 9))
    normal = evaluate(policy=policy, priority="normal", history=history, now=at(MON, 10))
    assert normal.response is None
    assert normal.resolution is not None
    low = evaluate(policy=policy, priority="low", history=history, now=at(MON, 10))
    assert low.response is None and low.resolution is None
    assert low.next_change_at is None


def test_policy_round_trips_through_json() -> None:
    policy = build_policy("continue", response=30, resolution=240)
    stored = json.loads(json.dumps(policy.to_dict()))
    assert stored["targets"] == {"high": {"response_minutes": 30, "resolution_minutes": 240}}
    assert stored["rework"] == "continue"
    assert SlaPolicy.from_dict(stored) == policy


def test_a_policy_without_calendar_is_24_7_utc_and_restarts_on_rework() -> None:
    policy = SlaPolicy.from_dict({"targets": {"critical": {"response_minutes": 15}}})
    assert policy.calendar == BusinessCalendar.twenty_four_seven("UTC")
    assert policy.rework == "restart"
    assert policy.targets["critical"] == Targets(response_minutes=15)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"targets": {"urgent": {}}}, "unknown priority 'urgent'"),
        ({"targets": {"high": {"response_minutes": 0}}}, "positive whole number"),
        ({"targets": {"high": {"response_minutes": 1.5}}}, "positive whole number"),
        ({"targets": {"high": {"response_minutes": True}}}, "positive whole number"),
        ({"targets": {"high": {"response": 10}}}, "response_minutes, resolution_minutes"),
        ({"targets": []}, "targets is an object"),
        ({"rework": "reset"}, "rework must be one of restart, continue"),
        ({"calendar": {"time_zone": "Mars/Olympus"}}, "unknown time zone"),
        ({"response_minutes": 30}, "unknown SLA fields: response_minutes"),
        ("30m", "an SLA policy is an object"),
    ],
)
def test_bad_policies_are_refused_with_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        SlaPolicy.from_dict(data)


def test_policy_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="positive"):
        Targets(response_minutes=-5)
    assert issubclass(PolicyError, Invalid)


# --- squeeze ----------------------------------------------------------------------------------


def test_squeeze_when_the_downstream_deadline_falls_after_ours() -> None:
    assert squeeze(at(MON, 12), at(MON, 13))
    assert not squeeze(at(MON, 12), at(MON, 12))
    assert not squeeze(at(MON, 12), at(MON, 11))
    assert not squeeze(None, at(MON, 11))
    assert not squeeze(at(MON, 12), None)


# --- properties: what a scheduler relies on ---------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "Australia/Lord_Howe"]
CALENDARS = {z: BusinessCalendar.of(z, {d: [("09:00", "17:00")] for d in WORKDAYS}) for z in ZONES}
BASE = datetime(2026, 3, 20, tzinfo=UTC)  # spans Berlin's and Lord Howe's changes


@st.composite
def histories(draw: st.DrawFn) -> tuple[str, SlaHistory, datetime]:
    """An offer, up to three closed holds after it, and a ``now`` after them (whole minutes)."""
    offset = draw(st.integers(0, 14 * 1440))
    offered = BASE + timedelta(minutes=offset)
    marks = sorted(draw(st.lists(st.integers(0, 10 * 1440), max_size=7, unique=True)))
    *cuts, last = marks or [0]
    pairs = cuts[: len(cuts) // 2 * 2]
    holds = tuple(
        Hold(offered + timedelta(minutes=pairs[i]), offered + timedelta(minutes=pairs[i + 1]))
        for i in range(0, len(pairs), 2)
    )
    now = offered + timedelta(minutes=last)
    return draw(st.sampled_from(ZONES)), SlaHistory(offered_at=offered, holds=holds), now


@settings(max_examples=60, deadline=None, database=None)
@given(histories(), st.integers(1, 3000), st.sampled_from(["high", "normal"]))
def test_the_state_changes_exactly_at_next_change_at(
    case: tuple[str, SlaHistory, datetime], target: int, priority: Priority
) -> None:
    zone, history, now = case
    cal = CALENDARS[zone]
    policy = SlaPolicy(calendar=cal, targets={priority: Targets(resolution_minutes=target)})
    clock = evaluate(policy=policy, priority=priority, history=history, now=now).resolution
    assert clock is not None
    held = sum(
        (cal.business_time_between(h.start, h.end or now) for h in history.holds), timedelta(0)
    )
    assert clock.elapsed == cal.business_time_between(history.offered_at, now) - held
    if clock.elapsed < clock.target:
        assert clock.due_at == cal.add_business_time(now, clock.target - clock.elapsed)
    if clock.next_change_at is None:
        assert clock.state == "breached"
        return
    later = evaluate(policy=policy, priority=priority, history=history, now=clock.next_change_at)
    before = clock.next_change_at - timedelta(microseconds=1)
    just_before = evaluate(policy=policy, priority=priority, history=history, now=before)
    assert later.resolution is not None and just_before.resolution is not None
    assert (clock.state, later.resolution.state) in {("ok", "at_risk"), ("at_risk", "breached")}
    assert just_before.resolution.state == clock.state
