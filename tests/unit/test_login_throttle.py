"""Sign-in throttling (account/users/throttle.py) on a controlled clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from account.users.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(**limits: int) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    settings = {"per_user": 3, "per_address": 10, "window_seconds": 60.0} | limits
    return LoginThrottle(clock=clock, **settings), clock  # type: ignore[arg-type]


def test_a_username_is_refused_from_an_address_after_the_limit_until_the_window_slides() -> None:
    limiter, clock = throttle()
    for _ in range(3):
        assert limiter.retry_after("ann", "10.0.0.1") is None
        limiter.failed("ann", "10.0.0.1")
        clock.now += 5
    assert limiter.retry_after("ann", "10.0.0.1") == 45  # the first failure leaves at 1060
    # The same user from elsewhere, and another user from here, are not affected.
    assert limiter.retry_after("ann", "10.0.0.2") is None
    assert limiter.retry_after("bob", "10.0.0.1") is None
    clock.now = 1060.0
    assert limiter.retry_after("ann", "10.0.0.1") is None
    limiter.failed("ann", "10.0.0.1")  # 3 in the window again: 1005, 1010, 1060
    assert limiter.retry_after("ann", "10.0.0.1") == 5


def test_a_success_clears_the_users_failures_but_not_the_addresss() -> None:
    limiter, _clock = throttle(per_address=5)
    for _ in range(2):
        limiter.failed("ann", "10.0.0.1")
    limiter.succeeded("ann", "10.0.0.1")
    for _ in range(2):
        limiter.failed("ann", "10.0.0.1")
    assert limiter.retry_after("ann", "10.0.0.1") is None  # 2 since the success, not 4 ...
    limiter.failed("cat", "10.0.0.1")
    assert limiter.retry_after("dan", "10.0.0.1") == 60  # ... but the address counts all 5


def test_spraying_usernames_from_one_address_hits_the_address_limit() -> None:
    limiter, _clock = throttle()
    for n in range(10):
        assert limiter.retry_after(f"user{n}", "10.0.0.9") is None
        limiter.failed(f"user{n}", "10.0.0.9")
    assert limiter.retry_after("someone-new", "10.0.0.9") == 60
    assert limiter.retry_after("someone-new", "10.0.0.8") is None


def test_a_limit_of_zero_is_off() -> None:
    limiter, _clock = throttle(per_user=0, per_address=0)
    for _ in range(100):
        limiter.failed("ann", "10.0.0.1")
    assert limiter.retry_after("ann", "10.0.0.1") is None


@given(st.lists(st.tuples(st.text(max_size=5), st.sampled_from(["a", "b", "c"])), max_size=300))
def test_memory_stays_bounded_whatever_is_tried(attempts: list[tuple[str, str]]) -> None:
    limiter, clock = throttle()
    limiter.max_keys = 20
    for username, address in attempts:
        limiter.failed(username, address)
        clock.now += 0.5
        assert len(limiter._failures) <= 20
        wait = limiter.retry_after(username, address)
        assert wait is None or 1 <= wait <= 60
