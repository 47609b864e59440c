"""A running node: the transport supervisor, the inbox consumer and the outbox relay.

The supervisor connects with jittered exponential backoff (tenacity), declares the inbox of every
hosted account, then runs one consumer per account and the relay until the connection drops, and
starts over. The HTTP API never waits for it: while the broker is away, writes still commit and
their envelopes wait in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from account.attachments import federation as attachment_federation
from account.context import Identity, NodeContext
from account.hub import poller as hub_poller
from account.messaging import inbox
from account.messaging.relay import OutboxRelay
from account.sla.scheduler import SlaScheduler
from account.tmf import notifier as tmf_notifier
from exchange.errors import TransportUnavailable
from exchange.faults import crash_point
from exchange.transport import DELIVERY_LIMIT, Delivery, Outcome, Transport

log = logging.getLogger("tix.node")


class NodeRuntime:
    """Owns the transport of one node process and the background tasks that use it."""

    def __init__(self, ctx: NodeContext, transport: Transport) -> None:
        self.ctx = ctx
        self.transport = transport
        self.relay = OutboxRelay(
            ctx.engine,
            transport,
            poll_seconds=ctx.settings.relay_poll_seconds,
            max_backoff=ctx.settings.relay_max_backoff_seconds,
        )
        self.identities: dict[str, Identity] = {ctx.account_id: ctx.identity}
        # Runs in the inbox transaction of every applied message (``inbox.receive``).
        self.on_applied: inbox.AppliedHook | None = None
        self._rehost = asyncio.Event()
        self.counters: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._sla_task: asyncio.Task[None] | None = None
        self._tmf_task: asyncio.Task[None] | None = None
        self._hub_task: asyncio.Task[None] | None = None
        self.sla = SlaScheduler(
            ctx.engine,
            self.identities,
            tick=ctx.settings.sla_tick_seconds,
            wake_relay=self.relay.wake,
        )
        ctx.wake_relay = self.relay.wake
        ctx.status["broker"] = "connecting"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="tix-supervisor")
        self._fetcher = asyncio.create_task(
            attachment_federation.fetch_loop(self.ctx.engine, self.ctx.identity, self.ctx.settings),
            name="tix-attachment-fetcher",
        )
        self._sla_task = asyncio.create_task(self.sla.run(), name="tix-sla-scheduler")
        self._tmf_task = asyncio.create_task(tmf_notifier.serve(self.ctx), name="tix-tmf")
        self._hub_task = asyncio.create_task(hub_poller.run(self.ctx), name="tix-hub-poller")

    async def stop(self) -> None:
        if self._hub_task is not None:
            self._hub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._hub_task
        if self._tmf_task is not None:
            self._tmf_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tmf_task
        if self._sla_task is not None:
            self._sla_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sla_task
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._fetcher
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.transport.close()

    def host(self, identity: Identity) -> None:
        """Host one more account: reconnect so its inbox is declared and consumed too."""
        self.identities[identity.account_id] = identity
        self._rehost.set()

    async def _connect(self) -> None:
        async for attempt in AsyncRetrying(
            # Not wait_exponential_jitter(initial=…): tenacity 9.2 deprecates ``initial``, and
            # its replacement ``multiplier`` is missing before 9.2; this is the same backoff.
            wait=wait_exponential(multiplier=0.2, max=self.ctx.settings.relay_max_backoff_seconds)
            + wait_random(0, 1),
            retry=retry_if_exception_type(TransportUnavailable),
        ):
            with attempt:
                await self.transport.connect()
                for account_id in self.identities:
                    await self.transport.declare_inbox(account_id)

    async def _supervise(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect()
                self.ctx.status["broker"] = "up"
                failures = 0
                log.info("connected to the %s transport", self.transport.name)
                tasks = [
                    asyncio.create_task(self.transport.consume(account_id, self._handle))
                    for account_id in self.identities
                ]
                tasks.append(asyncio.create_task(self.relay.run()))
                rehost = asyncio.create_task(self._rehost.wait())
                try:
                    done, _ = await asyncio.wait(
                        [*tasks, rehost], return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        task.result()
                finally:
                    for task in (*tasks, rehost):
                        task.cancel()
                    await asyncio.gather(*tasks, rehost, return_exceptions=True)
                if self._rehost.is_set():  # a newly hosted account: connect again at once
                    self._rehost.clear()
                    with contextlib.suppress(Exception):
                        await self.transport.close()
                    continue
            except asyncio.CancelledError:
                raise
            except TransportUnavailable as exc:
                log.warning("broker unavailable: %s", exc)
            except Exception:
                log.exception("transport supervisor failed; restarting")
            self.ctx.status["broker"] = "down"
            with contextlib.suppress(Exception):
                await self.transport.close()
            failures += 1
            # A persistent error (say, a queue declared with other arguments) must not spin.
            cap = self.ctx.settings.relay_max_backoff_seconds
            await asyncio.sleep(min(cap, 0.5 * 2 ** min(failures - 1, 10)))

    async def _handle(self, delivery: Delivery) -> Outcome:
        try:
            result = await asyncio.to_thread(
                inbox.receive,
                delivery.body,
                engine=self.ctx.engine,
                identities=self.identities,
                max_skew=timedelta(seconds=self.ctx.settings.max_clock_skew_seconds),
                settings=self.ctx.settings,
                on_applied=self.on_applied,
                broker_user=delivery.user_id,
                require_broker_user=self.ctx.settings.broker_identity,
            )
        except Exception as exc:  # the database is away or locked: try again later
            log.exception("inbox failed on message %s", delivery.message_id)
            self.counters["inbox_retry"] = self.counters.get("inbox_retry", 0) + 1
            if delivery.delivery_count + 1 >= DELIVERY_LIMIT:
                # The broker would dead-letter the next failure without a word; record it
                # with its reason first, so the operator sees it with the other rejections.
                reason = f"{type(exc).__name__}: {exc}"[:300]
                await asyncio.to_thread(
                    inbox.record_rejection,
                    self.ctx.engine,
                    delivery.body,
                    "retry_exhausted",
                    reason,
                )
                return Outcome.dead("retry_exhausted")
            return Outcome.retry(type(exc).__name__)
        self.counters[result.outcome] = self.counters.get(result.outcome, 0) + 1
        if result.outcome == "rejected":
            return Outcome.dead(result.reason)
        crash_point("consumer_after_commit_before_ack")
        if result.outcome == "applied":
            self.relay.wake()  # what we applied may have queued a roll-up
        return Outcome.ack()
