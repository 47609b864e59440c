"""SLA policies and clock computation (ARCHITECTURE §3, §8). Pure: no I/O, no framework.

A link's contract carries one ``SlaPolicy``: its business calendar, targets per priority in
business minutes (``response``: offer → accept; ``resolution``: offer → resolved) and what a
rework does to the resolution clock. ``evaluate`` reads a delegation's history as of ``now`` and
says, per clock, how much business time has elapsed, the state, and when the state will next
change if nothing else happens — the instant a scheduler should wake up at.

**Pauses.** Both clocks stand still while the ticket is on hold: the due instant moves later by
exactly the business time spent on hold. While a hold is open the clock is ``paused`` and has no
due instant (it depends on when the hold ends); ``remaining`` says how much is left.

**Rework.** ``restart``: the resolution clock starts again at the (last) rework, from zero, with
the full target. ``continue``: it resumes where it stopped; the time between the resolution that
was sent back and the rework does not count (like a hold). That is why a rework is recorded as
the pair (resolved_at, reworked_at).

**States.** ``ok`` below 75 % of the target, ``at_risk`` from 75 %, ``breached`` from 100 % while
running; a stopped clock is ``met`` when it stopped at or before its due instant, else
``breached``. ``warn_at`` and ``due_at`` are the instants at which 75 % and 100 % are reached
(for a stopped clock: would have been, had it kept running).

**History as of now.** Events after ``now`` are ignored (a hold ending later is still open), so
evaluating at any past instant gives the state at that instant. Out-of-order instants (clock
skew between nodes, a hold ending before it starts) are clamped, never negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, get_args

from account.errors import Invalid
from account.sla.calendar import BusinessCalendar
from exchange.clock import aware
from schemas.common import Priority

__all__ = [
    "WARN_FRACTION",
    "Clock",
    "Hold",
    "PolicyError",
    "Rework",
    "SlaClocks",
    "SlaHistory",
    "SlaPolicy",
    "Targets",
    "evaluate",
    "squeeze",
]

ClockName = Literal["response", "resolution"]
ClockState = Literal["ok", "at_risk", "breached", "met"]
ReworkPolicy = Literal["restart", "continue"]
EventKind = Literal["warning", "breach"]

WARN_FRACTION: Final = (3, 4)  # an exact ratio: targets are whole minutes, so 75 % is exact µs
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)
REWORK_POLICIES: Final[tuple[ReworkPolicy, ...]] = get_args(ReworkPolicy)
_TARGET_FIELDS: Final = frozenset({"response_minutes", "resolution_minutes"})

Interval = tuple[datetime, datetime]


class PolicyError(Invalid, ValueError):
    """An SLA policy that cannot be built from what a contract holds."""

    default_detail = "invalid SLA policy"


@dataclass(frozen=True, slots=True)
class Targets:
    """Targets of one priority in business minutes; ``None`` means no such clock."""

    response_minutes: int | None = None
    resolution_minutes: int | None = None

    def __post_init__(self) -> None:
        for name in ("response_minutes", "resolution_minutes"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0
            ):
                raise PolicyError(f"{name} must be a positive whole number of minutes")


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """A link's SLA: calendar, targets per priority, what a rework does."""

    calendar: BusinessCalendar
    targets: Mapping[Priority, Targets] = field(default_factory=dict, hash=False)
    rework: ReworkPolicy = "restart"

    def __post_init__(self) -> None:
        for priority in self.targets:
            if priority not in PRIORITIES:
                raise PolicyError(f"unknown priority {priority!r}")
        if self.rework not in REWORK_POLICIES:
            raise PolicyError(f"rework must be one of {', '.join(REWORK_POLICIES)}")
        object.__setattr__(self, "targets", MappingProxyType(dict(self.targets)))

    @classmethod
    def from_dict(cls, data: Any) -> SlaPolicy:
        """The policy in a contract's ``sla`` (see ``to_dict``); no calendar means 24/7 UTC."""
        if not isinstance(data, Mapping):
            raise PolicyError("an SLA policy is an object with calendar, targets, rework")
        unknown = set(data) - {"calendar", "targets", "rework"}
        if unknown:
            raise PolicyError(f"unknown SLA fields: {', '.join(sorted(map(str, unknown)))}")
        calendar = (
            BusinessCalendar.from_dict(data["calendar"])
            if "calendar" in data
            else BusinessCalendar.twenty_four_seven()
        )
        raw_targets = data.get("targets", {})
        if not isinstance(raw_targets, Mapping):
            raise PolicyError('targets is an object like {"high": {"response_minutes": 30}}')
        targets: dict[Priority, Targets] = {}
        for priority, raw in raw_targets.items():
            if priority not in PRIORITIES:
                raise PolicyError(f"unknown priority {priority!r} (use {', '.join(PRIORITIES)})")
            if not isinstance(raw, Mapping) or set(raw) - _TARGET_FIELDS:
                raise PolicyError(f"{priority}: targets are response_minutes, resolution_minutes")
            targets[priority] = Targets(raw.get("response_minutes"), raw.get("resolution_minutes"))
        return cls(calendar=calendar, targets=targets, rework=data.get("rework", "restart"))

    def to_dict(self) -> dict[str, Any]:
        """JSON for a contract's ``sla`` field."""
        return {
            "calendar": self.calendar.to_dict(),
            "targets": {
                p: {
                    key: value
                    for key, value in (
                        ("response_minutes", t.response_minutes),
                        ("resolution_minutes", t.resolution_minutes),
                    )
                    if value is not None
                }
                for p, t in self.targets.items()
            },
            "rework": self.rework,
        }


class Hold(NamedTuple):
    """A stretch on hold; ``end`` is ``None`` while it lasts."""

    start: datetime
    end: datetime | None = None


class Rework(NamedTuple):
    """A resolution the upstream sent back: when it was resolved, when it came back."""

    resolved_at: datetime
    reworked_at: datetime


@dataclass(frozen=True, slots=True)
class SlaHistory:
    """What happened to a delegation, as far as its clocks care."""

    offered_at: datetime
    accepted_at: datetime | None = None
    holds: tuple[Hold, ...] = ()
    resolved_at: datetime | None = None  # the standing resolution; None while open
    reworks: tuple[Rework, ...] = ()  # in order

    def __post_init__(self) -> None:
        # Plain (start, end) pairs, e.g. straight from rows, become the named tuples.
        object.__setattr__(self, "holds", tuple(Hold(*h) for h in self.holds))
        object.__setattr__(self, "reworks", tuple(Rework(*r) for r in self.reworks))

    def as_of(self, now: datetime) -> SlaHistory:
        """The history as it stood at ``now``: later events dropped, later ends left open."""
        holds = tuple(
            Hold(h.start, h.end if h.end is not None and aware(h.end) <= now else None)
            for h in self.holds
            if aware(h.start) <= now
        )
        reworks = tuple(r for r in self.reworks if aware(r.reworked_at) <= now)
        resolved_at = self.resolved_at
        if len(reworks) < len(self.reworks):
            # Sent back after now: the resolution that stood at now is the one it sent back.
            pending = self.reworks[len(reworks)].resolved_at
            resolved_at = pending if aware(pending) <= now else None
        elif resolved_at is not None and aware(resolved_at) > now:
            resolved_at = None
        accepted_at = self.accepted_at
        if accepted_at is not None and aware(accepted_at) > now:
            accepted_at = None
        return replace(
            self, accepted_at=accepted_at, holds=holds, resolved_at=resolved_at, reworks=reworks
        )


@dataclass(frozen=True, slots=True)
class Clock:
    """One clock read at an instant."""

    name: ClockName
    state: ClockState
    target_minutes: int
    started_at: datetime
    stopped_at: datetime | None
    paused: bool
    elapsed: timedelta  # business time, exact
    warn_at: datetime | None  # 75 % reached (None while paused)
    due_at: datetime | None  # 100 % reached (None while paused)
    next_change_at: datetime | None  # when ok → at_risk or at_risk → breached, if nothing happens

    @property
    def target(self) -> timedelta:
        return timedelta(minutes=self.target_minutes)

    @property
    def elapsed_minutes(self) -> float:
        return self.elapsed / timedelta(minutes=1)

    @property
    def fraction(self) -> float:
        """Elapsed over target: 0.75 is the warning, 1.0 the breach."""
        return self.elapsed / self.target

    @property
    def remaining(self) -> timedelta:
        """Business time left before the breach (zero once breached)."""
        return max(self.target - self.elapsed, timedelta(0))

    @property
    def reached(self) -> tuple[EventKind, ...]:
        """The ``sla.event`` kinds this clock has earned so far (emit each once)."""
        kinds: list[EventKind] = []
        if self.elapsed >= _warn_amount(self.target):
            kinds.append("warning")
        if self.state == "breached":
            kinds.append("breach")
        return tuple(kinds)


@dataclass(frozen=True, slots=True)
class SlaClocks:
    """Both clocks of a delegation; ``None`` where the policy sets no target."""

    response: Clock | None
    resolution: Clock | None

    @property
    def next_change_at(self) -> datetime | None:
        """The earliest instant at which either clock changes state."""
        instants = [c.next_change_at for c in (self.response, self.resolution) if c is not None]
        return min((i for i in instants if i is not None), default=None)


def evaluate(
    *, policy: SlaPolicy, priority: Priority, history: SlaHistory, now: datetime
) -> SlaClocks:
    """Both clocks of a delegation as they stand at ``now``."""
    now = aware(now)
    targets = policy.targets.get(priority, Targets())
    past = history.as_of(now)
    holds = [(aware(h.start), now if h.end is None else aware(h.end)) for h in past.holds]
    on_hold = any(h.end is None for h in past.holds)
    offered = aware(history.offered_at)

    response = None
    if targets.response_minutes is not None:
        response = _clock(
            "response",
            policy.calendar,
            targets.response_minutes,
            offered,
            None if past.accepted_at is None else aware(past.accepted_at),
            holds,
            on_hold,
            now,
        )

    resolution = None
    if targets.resolution_minutes is not None:
        start, pauses = offered, list(holds)
        if past.reworks and policy.rework == "restart":
            start = aware(past.reworks[-1].reworked_at)
        elif policy.rework == "continue":
            pauses += [(aware(r.resolved_at), aware(r.reworked_at)) for r in past.reworks]
        resolution = _clock(
            "resolution",
            policy.calendar,
            targets.resolution_minutes,
            start,
            None if past.resolved_at is None else aware(past.resolved_at),
            pauses,
            on_hold,
            now,
        )
    return SlaClocks(response=response, resolution=resolution)


def squeeze(upstream_due: datetime | None, downstream_due: datetime | None) -> bool:
    """Whether a downstream deadline falls after our own (we cannot keep ours by waiting)."""
    if upstream_due is None or downstream_due is None:
        return False
    return aware(downstream_due) > aware(upstream_due)


# --- computation ----------------------------------------------------------------------------


def _warn_amount(target: timedelta) -> timedelta:
    numerator, denominator = WARN_FRACTION
    return target * numerator // denominator


def _clock(
    name: ClockName,
    calendar: BusinessCalendar,
    target_minutes: int,
    start: datetime,
    stop: datetime | None,
    pauses: list[Interval],
    on_hold: bool,
    now: datetime,
) -> Clock:
    if stop is not None:
        stop = max(stop, start)  # accepted "before" the offer: skew between nodes
    end = max(start, now if stop is None else stop)
    running = _running(start, end, pauses)
    measures = [calendar.business_time_between(a, b) for a, b in running]
    elapsed = sum(measures, timedelta(0))
    paused = stop is None and on_hold and now >= start
    # From where the clock would go on if nothing else happened: nowhere while paused.
    tail = None if paused else end
    target = timedelta(minutes=target_minutes)
    warn_at = _reached_at(calendar, running, measures, _warn_amount(target), tail)
    due_at = _reached_at(calendar, running, measures, target, tail)

    state: ClockState
    next_change_at = None
    if stop is not None:
        # Stopping exactly at the due instant meets the target; later (even in closed time) not.
        state = "met" if due_at is not None and stop <= due_at else "breached"
    elif elapsed >= target:
        state = "breached"
    elif elapsed >= _warn_amount(target):
        state, next_change_at = "at_risk", due_at
    else:
        state, next_change_at = "ok", warn_at
    if paused:
        warn_at = due_at = next_change_at = None
    return Clock(
        name=name,
        state=state,
        target_minutes=target_minutes,
        started_at=start,
        stopped_at=stop,
        paused=paused,
        elapsed=elapsed,
        warn_at=warn_at,
        due_at=due_at,
        next_change_at=next_change_at,
    )


def _running(start: datetime, end: datetime, pauses: list[Interval]) -> list[Interval]:
    """``[start, end)`` minus the pauses, as sorted disjoint intervals."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in pauses)
    running: list[Interval] = []
    cursor = start
    for a, b in clipped:
        if b <= a:
            continue
        if a > cursor:
            running.append((cursor, a))
        cursor = max(cursor, b)
    if end > cursor:
        running.append((cursor, end))
    return running


def _reached_at(
    calendar: BusinessCalendar,
    running: list[Interval],
    measures: list[timedelta],
    amount: timedelta,
    tail: datetime | None,
) -> datetime | None:
    """When ``amount`` of running business time is reached, going on from ``tail`` if needed."""
    done = timedelta(0)
    for (a, _), measure in zip(running, measures, strict=True):
        if done + measure >= amount:
            return calendar.add_business_time(a, amount - done)
        done += measure
    if tail is None:
        return None
    return calendar.add_business_time(tail, amount - done)
