"""The SLA scheduler task of a running node: sweep now, then whenever a check falls due.

It runs apart from the broker: events it emits wait in the outbox like any other message. The
first sweep at start finds every check that fell due while the node was down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from sqlalchemy.engine import Engine

from account.context import Identity
from account.sla import flows

log = logging.getLogger("tix.sla")


class SlaScheduler:
    """Sweeps due SLA checks every ``tick`` seconds; counts what it did for ``/metrics``."""

    def __init__(
        self,
        engine: Engine,
        identities: Mapping[str, Identity],
        *,
        tick: float,
        wake_relay: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.identities = identities
        self.tick = tick
        self.wake_relay = wake_relay
        self.sweeps = 0
        self.events = 0
        self.last_sweep_seconds = 0.0

    def sweep(self) -> int:
        """One sweep (blocking); returns how many events it emitted."""
        started = time.perf_counter()
        _, events = flows.sweep(self.engine, self.identities)
        self.last_sweep_seconds = time.perf_counter() - started
        self.sweeps += 1
        self.events += events
        return events

    async def run(self) -> None:
        while True:
            try:
                events = await asyncio.to_thread(self.sweep)
                if events:
                    log.info("SLA sweep emitted %d event(s)", events)
                    self.wake_relay()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again next tick
                log.exception("SLA sweep failed")
            await asyncio.sleep(self.tick)
