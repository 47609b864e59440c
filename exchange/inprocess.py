"""In-memory implementation of the transport port, for one machine and for tests.

``InProcessBroker`` is "the broker": it holds the inboxes, their messages and dead letters, so
messages survive a transport's close and reconnect. Setting ``broker.down = True`` simulates the
broker being away: every connection drops (as a broker restart would) and every operation raises
``TransportUnavailable`` until the broker is back and the transport has called ``connect()``.

The semantics mirror RabbitMQ quorum queues as ``exchange.amqp`` uses them: a requeued or
returned delivery goes back to the head with ``redelivered=True`` and its delivery count raised,
and once the count passes ``DELIVERY_LIMIT`` it is dead-lettered with reason ``delivery_limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from exchange.errors import TransportError, TransportUnavailable, Unroutable
from exchange.transport import (
    DELIVERY_LIMIT,
    DeadLetter,
    Delivery,
    Disposition,
    Handler,
    Outcome,
    Transport,
)

log = logging.getLogger(__name__)

# How often an idle consumer re-checks the broker state when nothing woke it.
IDLE_CHECK = 1.0
MAX_RETRY_BACKOFF = 5.0
DELIVERY_LIMIT_REASON = "delivery_limit"


@dataclass
class _Stored:
    """A message as the broker keeps it."""

    body: bytes
    message_id: str | None
    headers: dict[str, str]
    delivery_count: int = 0
    redelivered: bool = False


@dataclass(eq=False)
class _Inbox:
    """One account's inbox and dead-letter list."""

    ready: deque[_Stored] = field(default_factory=deque)
    dead: deque[tuple[_Stored, str]] = field(default_factory=deque)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    deleted: bool = False


class InProcessBroker:
    """Shared in-memory broker state: declared inboxes, their queues and dead letters."""

    def __init__(self) -> None:
        self._inboxes: dict[str, _Inbox] = {}
        self._down = False
        # Bumped whenever the broker goes down: connections opened before are gone.
        self.epoch = 0

    @property
    def down(self) -> bool:
        """Whether the broker is away (tests set this)."""
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        if value and not self._down:
            self.epoch += 1
        self._down = value
        self.notify_all()

    def notify_all(self) -> None:
        """Wake every waiting consumer so it re-checks the state."""
        for inbox in self._inboxes.values():
            inbox.changed.set()

    def inbox(self, account_id: str) -> _Inbox | None:
        return self._inboxes.get(account_id)

    def declare(self, account_id: str) -> None:
        self._inboxes.setdefault(account_id, _Inbox())

    def delete(self, account_id: str) -> None:
        inbox = self._inboxes.pop(account_id, None)
        if inbox is not None:
            inbox.deleted = True
            inbox.changed.set()

    def ready_count(self, account_id: str) -> int:
        """Messages waiting in the inbox (for tests and diagnostics)."""
        inbox = self._inboxes.get(account_id)
        return len(inbox.ready) if inbox is not None else 0

    def route(self, account_id: str, message: _Stored) -> None:
        """Append to the tail of the inbox; raise ``Unroutable`` when none is declared."""
        inbox = self._inboxes.get(account_id)
        if inbox is None:
            raise Unroutable(f"no inbox declared for {account_id!r}")
        inbox.ready.append(message)
        inbox.changed.set()

    def give_back(self, inbox: _Inbox, message: _Stored) -> None:
        """Return an unsettled delivery to the head; past the limit, dead-letter it."""
        if inbox.deleted:
            return
        message.delivery_count += 1
        message.redelivered = True
        if message.delivery_count > DELIVERY_LIMIT:
            inbox.dead.append((message, DELIVERY_LIMIT_REASON))
        else:
            inbox.ready.appendleft(message)
        inbox.changed.set()


class InProcessTransport(Transport):
    """The transport on an ``InProcessBroker``; see ``exchange.transport`` for the contract."""

    name = "inprocess"

    def __init__(
        self,
        broker: InProcessBroker,
        *,
        retry_backoff: float = 0.2,
        max_retry_backoff: float = MAX_RETRY_BACKOFF,
    ) -> None:
        self._broker = broker
        self._retry_backoff = retry_backoff
        self._max_retry_backoff = max_retry_backoff
        self._epoch: int | None = None
        # Bumped by close(); a consumer started under an older generation stops quietly.
        self._generation = 0

    @property
    def broker(self) -> InProcessBroker:
        return self._broker

    @property
    def connected(self) -> bool:
        """Whether the connection is open now."""
        return (
            self._epoch is not None and self._epoch == self._broker.epoch and not self._broker.down
        )

    async def connect(self) -> None:
        """Connect (no-op when connected); raise ``TransportUnavailable`` if the broker is down."""
        await asyncio.sleep(0)
        if self._broker.down:
            raise TransportUnavailable("in-process broker is down")
        if not self.connected:
            self._epoch = self._broker.epoch

    async def close(self) -> None:
        """Disconnect and stop every consumer; safe to call twice."""
        self._epoch = None
        self._generation += 1
        self._broker.notify_all()
        await asyncio.sleep(0)

    def _check(self) -> None:
        if not self.connected:
            raise TransportUnavailable(
                "in-process broker is down" if self._broker.down else "not connected"
            )

    async def declare_inbox(self, account_id: str) -> None:
        """Declare (idempotently) the account's inbox and its dead-letter list."""
        self._check()
        self._broker.declare(account_id)
        await asyncio.sleep(0)

    async def delete_inbox(self, account_id: str) -> None:
        """Delete the account's inbox and dead letters; a missing one is ignored."""
        self._check()
        self._broker.delete(account_id)
        await asyncio.sleep(0)

    async def publish(
        self,
        *,
        to: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Put the message at the tail of ``to``'s inbox."""
        await asyncio.sleep(0)
        self._check()
        self._broker.route(to, _Stored(bytes(body), message_id, dict(headers or {})))

    async def consume(self, account_id: str, handler: Handler) -> None:
        """Feed the account's inbox to ``handler`` one delivery at a time until cancelled."""
        self._check()
        generation = self._generation
        inbox = self._broker.inbox(account_id)
        if inbox is None:
            raise TransportError(f"inbox of {account_id!r} does not exist")
        while True:
            if self._generation != generation:
                return
            self._check()
            if inbox.deleted:
                raise TransportError(f"inbox of {account_id!r} was deleted")
            if not inbox.ready:
                inbox.changed.clear()
                # Not asyncio.wait_for: on Python 3.11 it can drop a cancel that meets the wake-up.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_CHECK):
                        await inbox.changed.wait()
                continue
            message = inbox.ready.popleft()
            settled = False
            try:
                await self._process(account_id, inbox, message, handler, generation)
                settled = True
            except TransportUnavailable:
                if self._generation != generation:
                    return  # close() stopped this consumer
                raise
            finally:
                if not settled:
                    # Cancelled or the connection dropped: unacked, so it goes back.
                    self._broker.give_back(inbox, message)

    async def _process(
        self,
        account_id: str,
        inbox: _Inbox,
        message: _Stored,
        handler: Handler,
        generation: int,
    ) -> None:
        """Run the handler on one delivery and settle it; raise if the connection is gone."""
        delivery = Delivery(
            body=message.body,
            message_id=message.message_id,
            redelivered=message.redelivered,
            delivery_count=message.delivery_count,
            headers=dict(message.headers),
        )
        try:
            outcome = await handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("handler failed on %s of %s; retrying", message.message_id, account_id)
            outcome = Outcome.retry(type(exc).__name__)
        if outcome.disposition is Disposition.RETRY:
            # Same back-off as the AMQP transport: requeues count toward the limit.
            await asyncio.sleep(
                min(
                    self._retry_backoff * 2 ** min(message.delivery_count, 16),
                    self._max_retry_backoff,
                )
            )
        # Settling needs the connection that delivered the message.
        if self._generation != generation or not self.connected:
            raise TransportUnavailable("connection lost before the delivery was settled")
        if outcome.disposition is Disposition.ACK:
            return
        if outcome.disposition is Disposition.RETRY:
            self._broker.give_back(inbox, message)
            return
        if not inbox.deleted:
            inbox.dead.append((message, outcome.reason))

    async def dead_letters(self, account_id: str, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` dead letters of the account (not removed)."""
        self._check()
        await asyncio.sleep(0)
        inbox = self._broker.inbox(account_id)
        if inbox is None:
            return []
        return [
            DeadLetter(
                body=message.body,
                message_id=message.message_id,
                reason=reason,
                headers=dict(message.headers),
            )
            for message, reason in list(inbox.dead)[:limit]
        ]

    async def replay_dead(self, account_id: str, *, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters to the tail of the inbox; return how many (at most
        what the dead letters held when asked, as on RabbitMQ)."""
        self._check()
        await asyncio.sleep(0)
        inbox = self._broker.inbox(account_id)
        if inbox is None:
            return 0
        moved = 0
        limit = min(limit, len(inbox.dead))
        while inbox.dead and moved < limit:
            message, _reason = inbox.dead.popleft()
            # A replay is a fresh publish: the broker's delivery count starts again.
            self._broker.route(
                account_id, _Stored(message.body, message.message_id, message.headers)
            )
            moved += 1
        return moved
