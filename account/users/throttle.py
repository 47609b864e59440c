"""Sign-in throttling: failed password sign-ins slow a guesser down, not the user. Pure Python.

A node counts failed password sign-ins (the API's ``POST /api/v1/auth/token`` and the web UI's
``POST /login``) in a sliding window, twice:

- per **username and client address**: after ``per_user`` failures, that username is refused
  from that address until the oldest failure leaves the window. Someone guessing one user's
  password is stopped after a handful of tries, while the user, signing in from their own
  address, is not locked out by the attacker (a lockout per username alone would let anyone
  lock the admin out);
- per **client address**: after ``per_address`` failures for any usernames, that address is
  refused, which stops spraying one password over many usernames.

A refused attempt is not checked at all (no password hash is computed, so it costs the node
nothing) and does not count again. A success clears that username's failures from that
address. The counts live in the node's memory: a restart clears them, and at most
``max_keys`` usernames and addresses are tracked (the oldest are forgotten first), so a flood of
made-up usernames cannot grow the node's memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LoginThrottle"]

_Key = tuple[str, str]  # ("user", "<username>\0<address>") or ("address", "<address>")


@dataclass
class LoginThrottle:
    per_user: int = 5
    per_address: int = 50
    window_seconds: float = 900.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[_Key, deque[float]] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def retry_after(self, username: str, address: str) -> int | None:
        """Whole seconds until ``username`` may try again from ``address``; None: try now."""
        now = self.clock()
        with self._lock:
            waits = [
                self._wait(key, limit, now)
                for key, limit in self._keys(username, address)
                if limit > 0
            ]
        wait = max((w for w in waits if w is not None), default=None)
        return None if wait is None else max(1, math.ceil(wait))

    def failed(self, username: str, address: str) -> None:
        """Count a failed sign-in of ``username`` from ``address``."""
        now = self.clock()
        with self._lock:
            for key, _limit in self._keys(username, address):
                times = self._failures.pop(key, None) or deque()
                self._expire(times, now)
                times.append(now)
                self._failures[key] = times  # most recently failed last
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        """Forget ``username``'s failures from ``address`` (the address's count stays)."""
        with self._lock:
            self._failures.pop(self._user_key(username, address), None)

    # -- internals ------------------------------------------------------------------------------

    def _keys(self, username: str, address: str) -> list[tuple[_Key, int]]:
        return [
            (self._user_key(username, address), self.per_user),
            (("address", address), self.per_address),
        ]

    @staticmethod
    def _user_key(username: str, address: str) -> _Key:
        return ("user", f"{username[:200]}\0{address}")

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_seconds:
            times.popleft()

    def _wait(self, key: _Key, limit: int, now: float) -> float | None:
        times = self._failures.get(key)
        if not times:
            return None
        self._expire(times, now)
        if len(times) < limit:
            return None
        # Refused until enough failures leave the window for one more try.
        return times[len(times) - limit] + self.window_seconds - now
