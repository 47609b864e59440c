"""A test-only message-layer chaos wrapper around a transport (RELIABILITY "chaos wrapper").

``maybe_wrap(transport)`` returns the transport unchanged unless fault injection is enabled
(``TIX_FAULT_INJECTION=1``) and ``TIX_CHAOS`` asks for faults, comma-separated (or
``TIX_CHAOS_FILE`` names a file holding such a spec, re-read at most every 0.2 s, so a test can
switch faults on and off in running nodes; an empty or missing file means no faults):

* ``dup:P`` publishes each envelope a second time with probability ``P`` (same id and body,
  so the receiver's inbox must drop the copy: a transport duplicate, never a second effect);
* ``hold:P[:N]`` holds an envelope back with probability ``P`` and publishes it after ``N``
  later envelopes (default 3) or after ``HOLD_SECONDS``, whichever comes first, so it
  arrives after messages committed later (reordering).

A held envelope is reported to the relay as confirmed, so the relay moves on to the next row;
it lives only in this process's memory until it is released (a held envelope is lost if the
process is killed: never combine ``hold`` with a kill). ``TIX_CHAOS_SEED`` makes the choices
repeatable; ``TIX_CHAOS_LOG`` names a file that gets one line per injected fault
(``dup <message id>`` / ``hold <message id>``) and per held envelope finally published
(``release <message id>``), which the fault suite counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from exchange.transport import DeadLetter, Handler, Transport

log = logging.getLogger("tix.chaos")

HOLD_SECONDS = 2.0


@dataclass(frozen=True)
class ChaosSpec:
    """What to inject: duplicate and hold-back probabilities."""

    dup: float = 0.0
    hold: float = 0.0
    hold_after: int = 3

    @property
    def active(self) -> bool:
        return self.dup > 0 or self.hold > 0


def parse_spec(text: str) -> ChaosSpec:
    """Parse ``dup:0.2,hold:0.1:5``; raise ``ValueError`` on anything else."""
    dup = hold = 0.0
    hold_after = 3
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, rest = part.partition(":")
        values = rest.split(":") if rest else []
        if name == "dup" and len(values) == 1:
            dup = float(values[0])
        elif name == "hold" and len(values) in (1, 2):
            hold = float(values[0])
            if len(values) == 2:
                hold_after = int(values[1])
        else:
            raise ValueError(f"unknown chaos fault {part!r}")
    if not (0 <= dup <= 1 and 0 <= hold <= 1 and hold_after >= 1):
        raise ValueError(f"chaos values out of range in {text!r}")
    return ChaosSpec(dup=dup, hold=hold, hold_after=hold_after)


@dataclass
class _Held:
    to: str
    body: bytes
    message_id: str
    headers: dict[str, str]
    since: float = field(default_factory=time.monotonic)
    passed: int = 0


class ChaosTransport(Transport):
    """Delegates to ``inner``, duplicating and holding back publishes as ``spec`` says."""

    def __init__(
        self,
        inner: Transport,
        spec: ChaosSpec,
        *,
        seed: int | None = None,
        log_path: str | None = None,
        spec_file: str | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._spec = spec
        self._spec_file = spec_file
        self._spec_read = -1.0
        self._random = random.Random(seed)  # noqa: S311 (chaos, not secrecy)
        self._log_path = log_path
        self._held: list[_Held] = []
        self._lock = asyncio.Lock()
        self._releaser: asyncio.Task[None] | None = None
        self.injected: dict[str, int] = {"dup": 0, "hold": 0, "release": 0}

    @property
    def spec(self) -> ChaosSpec:
        """The faults to inject now (from ``spec_file`` when there is one)."""
        if self._spec_file is None:
            return self._spec
        now = time.monotonic()
        if now - self._spec_read >= 0.2:
            self._spec_read = now
            try:
                with open(self._spec_file) as fh:
                    self._spec = parse_spec(fh.read().strip())
            except (OSError, ValueError):
                self._spec = ChaosSpec()
        return self._spec

    def _note(self, kind: str, message_id: str) -> None:
        self.injected[kind] += 1
        log.warning("chaos: %s %s", kind, message_id)
        if self._log_path:
            with open(self._log_path, "a") as fh:
                fh.write(f"{kind} {message_id}\n")

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        if self._releaser is not None:
            self._releaser.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._releaser
            self._releaser = None
        await self.inner.close()

    @property
    def connected(self) -> bool:
        return self.inner.connected

    async def declare_inbox(self, account_id: str) -> None:
        await self.inner.declare_inbox(account_id)

    async def delete_inbox(self, account_id: str) -> None:
        await self.inner.delete_inbox(account_id)

    async def publish(
        self,
        *,
        to: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.create_task(self._release_loop(), name="tix-chaos-release")
        spec = self.spec
        async with self._lock:
            if spec.hold and self._random.random() < spec.hold:
                self._held.append(_Held(to, body, message_id, dict(headers or {})))
                self._note("hold", message_id)
                return  # reported as confirmed: later rows overtake it
            await self.inner.publish(to=to, body=body, message_id=message_id, headers=headers)
            if spec.dup and self._random.random() < spec.dup:
                await self.inner.publish(to=to, body=body, message_id=message_id, headers=headers)
                self._note("dup", message_id)
            for held in self._held:
                held.passed += 1
            await self._release(lambda h: h.passed >= spec.hold_after)

    async def _release(self, due: object) -> None:
        """Publish the held envelopes ``due`` selects; keep them if the broker refuses."""
        assert callable(due)
        for held in [h for h in self._held if due(h)]:
            await self.inner.publish(
                to=held.to, body=held.body, message_id=held.message_id, headers=held.headers
            )
            self._held.remove(held)
            self._note("release", held.message_id)

    async def _release_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if not self._held:
                continue
            cutoff = time.monotonic() - HOLD_SECONDS
            try:
                async with self._lock:
                    await self._release(lambda h, c=cutoff: h.since <= c)
            except Exception as exc:  # the broker is away: try again on the next tick
                log.warning("chaos: release failed: %r", exc)

    async def consume(self, account_id: str, handler: Handler) -> None:
        await self.inner.consume(account_id, handler)

    async def dead_letters(self, account_id: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(account_id, limit=limit)

    async def replay_dead(self, account_id: str, *, limit: int = 100) -> int:
        return await self.inner.replay_dead(account_id, limit=limit)


def maybe_wrap(transport: Transport, environ: Mapping[str, str] | None = None) -> Transport:
    """``transport`` wrapped in chaos if the fault-injection settings ask for it, else itself."""
    env = os.environ if environ is None else environ
    if env.get("TIX_FAULT_INJECTION") != "1":
        return transport
    spec_file = env.get("TIX_CHAOS_FILE") or None
    spec = parse_spec(env.get("TIX_CHAOS", ""))
    if not spec.active and spec_file is None:
        return transport
    seed = env.get("TIX_CHAOS_SEED")
    return ChaosTransport(
        transport,
        spec,
        seed=int(seed) if seed else None,
        log_path=env.get("TIX_CHAOS_LOG") or None,
        spec_file=spec_file,
    )
