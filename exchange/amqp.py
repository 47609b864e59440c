"""RabbitMQ implementation of the transport port (aio-pika, plain connections).

The caller (the runtime supervisor) owns reconnection: when the broker goes away every operation
raises ``TransportUnavailable`` and the supervisor calls ``connect()`` again. This module is the
only place that declares broker topology, apart from the hub's audit tap queues, which it leaves
to ``exchange.hub.topology`` (two queues bound with ``#``; nothing else declares any).

Traps this code is shaped by (``shared/design/RELIABILITY.md``, measured on RabbitMQ 3.10.8):

* V11: without ``on_return_raises=True`` an unroutable mandatory publish is confirmed and lost.
* V5: on quorum queues every requeue counts toward ``x-delivery-limit``, so RETRY backs off
  before it nacks. On 3.10 a channel close counts as well, for every unacked message.
* A requeued message goes back to the head of a quorum queue, but the messages already
  prefetched by this consumer arrive before it; the consumer holds them back until the retried
  message has come round again, so deliveries keep queue order.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
    ExchangeType,
)

from exchange.errors import TransportError, TransportUnavailable, Unroutable
from exchange.transport import (
    DEAD_EXCHANGE_NAME,
    DELIVERY_LIMIT,
    EXCHANGE_NAME,
    DeadLetter,
    Delivery,
    Disposition,
    Handler,
    Outcome,
    Transport,
    dead_queue,
    inbox_queue,
)

log = logging.getLogger(__name__)


class _RoutineCancelFilter(logging.Filter):
    """aiormq warns "Closing channel … because RPC call … cancelled" whenever a task is
    cancelled while its channel waits for the broker. Tix cancels consumers on purpose (a node
    stopping, or reconnecting to host a new account), so that message is routine: it is logged
    at DEBUG instead of WARNING. Every other aiormq warning is untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith("Closing channel"):
            if "cancelled" in str(record.msg):
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("aiormq.channel").addFilter(_RoutineCancelFilter())

CONNECT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 15.0
OPERATION_TIMEOUT = 30.0
GET_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
# How often an idle consumer checks that its channel is still open.
IDLE_CHECK = 5.0
# How long a consumer holds later deliveries back while it waits for a retried one.
REDELIVERY_WAIT = 30.0
MAX_RETRY_BACKOFF = 5.0
# An ack, nack or reject whose connection died under it can wait forever for aiormq's writer;
# past this the consumer counts as lost and the supervisor reconnects (the fault suite found it).
SETTLE_TIMEOUT = 10.0

CONTENT_TYPE = "application/json"
REASON_HEADER = "x-tix-reason"
ACCOUNT_HEADER = "x-tix-account"
# Bookkeeping headers of the broker and of this module; they never reach handlers or replays.
_BOOKKEEPING_HEADERS = frozenset(
    {
        REASON_HEADER,
        ACCOUNT_HEADER,
        "x-delivery-count",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)

# Errors that mean "the broker or the connection is away", not "the request was wrong".
_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    asyncio.TimeoutError,
    asyncio.IncompleteReadError,
)

_CONSUMER_LOST: tuple[type[Exception], ...] = (*_UNAVAILABLE, aiormq.exceptions.AMQPError)


def check_account_id(account_id: str) -> None:
    """Refuse account ids that would act as topic wildcards or be empty."""
    if not account_id or any(c in account_id for c in "*# \t\r\n"):
        raise ValueError(f"invalid account id for a routing key: {account_id!r}")


def _header_text(value: Any) -> str:
    """One header value as text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def clean_headers(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """The application headers of a message, as text, without broker bookkeeping."""
    return {
        str(key): _header_text(value)
        for key, value in (raw or {}).items()
        if key not in _BOOKKEEPING_HEADERS and value is not None
    }


def delivery_count_of(raw: Mapping[str, Any] | None) -> int:
    """The broker's ``x-delivery-count`` (0 on a first delivery)."""
    value = (raw or {}).get("x-delivery-count")
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def dead_reason_of(raw: Mapping[str, Any] | None) -> str:
    """Why a message is in a dead-letter queue."""
    headers = raw or {}
    for key in (REASON_HEADER, "x-first-death-reason"):
        value = headers.get(key)
        if value:
            return _header_text(value)
    return "unknown"


def retry_backoff(base: float, delivery_count: int, cap: float = MAX_RETRY_BACKOFF) -> float:
    """Seconds to wait before requeueing a delivery that was seen ``delivery_count`` times."""
    return float(min(base * 2 ** min(delivery_count, 16), cap))


class _Signal(enum.Enum):
    """Why a consumer's wake-up queue got something other than a message."""

    CLOSED = "closed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class _Consumer:
    """One running ``consume`` call: its channel and whether ``close()`` stopped it."""

    channel: AbstractChannel
    wake: asyncio.Queue[AbstractIncomingMessage | _Signal]
    stopping: bool = False


class AmqpTransport(Transport):
    """The transport on RabbitMQ; see ``exchange.transport`` for the contract."""

    name = "amqp"

    def __init__(
        self,
        url: str,
        *,
        heartbeat: int = 10,
        prefetch: int = 64,
        retry_backoff: float = 0.2,
        max_retry_backoff: float = MAX_RETRY_BACKOFF,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._url = url
        self._heartbeat = heartbeat
        self._prefetch = prefetch
        self._retry_backoff = retry_backoff
        self._max_retry_backoff = max_retry_backoff
        self._connection: AbstractConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._connect_lock = asyncio.Lock()
        self._channel_lock = asyncio.Lock()
        self._consumers: set[_Consumer] = set()

    # -- connection ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is open now."""
        conn = self._connection
        # A broker-side close leaves ``is_closed`` False on a plain connection; the
        # ``connected`` event is what gets cleared then.
        return (
            conn is not None
            and not conn.is_closed
            and conn.connected.is_set()
            and conn.transport is not None
        )

    async def connect(self) -> None:
        """Open a connection (no-op when open) and declare both exchanges."""
        if self.connected:
            return
        async with self._connect_lock:
            if self.connected:
                return
            await self._forget_connection()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT + 5):
                    conn = await aio_pika.connect(
                        self._url, heartbeat=self._heartbeat, timeout=CONNECT_TIMEOUT
                    )
            except _UNAVAILABLE as exc:
                raise TransportUnavailable(f"cannot connect to the broker: {exc!r}") from exc
            except aiormq.exceptions.AMQPError as exc:
                raise TransportUnavailable(f"cannot connect to the broker: {exc!r}") from exc
            self._connection = conn
            try:
                await self._declare_exchanges()
            except BaseException:
                await self._forget_connection()
                raise

    async def close(self) -> None:
        """Stop every consumer and close the connection; safe to call twice."""
        for consumer in list(self._consumers):
            consumer.stopping = True
            consumer.wake.put_nowait(_Signal.CLOSED)
            await _close_channel(consumer.channel)
        await self._forget_connection()

    async def _forget_connection(self) -> None:
        """Close (if still open) and drop the current connection and publish channel."""
        conn, self._connection = self._connection, None
        channel, self._publish_channel = self._publish_channel, None
        if channel is not None:
            await _close_channel(channel)
        if conn is not None and not conn.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await conn.close()

    def _require_connection(self) -> AbstractConnection:
        conn = self._connection
        if conn is None or not self.connected:
            raise TransportUnavailable("not connected to the broker")
        return conn

    async def _open_channel(self, *, confirms: bool) -> AbstractChannel:
        """A fresh channel on the current connection."""
        conn = self._require_connection()
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                return await conn.channel(publisher_confirms=confirms, on_return_raises=confirms)
        except _UNAVAILABLE as exc:
            raise TransportUnavailable(f"cannot open a channel: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            raise TransportUnavailable(f"cannot open a channel: {exc!r}") from exc

    async def _get_publish_channel(self) -> AbstractChannel:
        """The shared confirm channel, reopened when the broker closed it."""
        async with self._channel_lock:
            channel = self._publish_channel
            if channel is None or channel.is_closed:
                # Confirms plus on_return_raises (V11): a returned message raises PublishError.
                channel = await self._open_channel(confirms=True)
                self._publish_channel = channel
            return channel

    async def _drop_publish_channel(self, channel: AbstractChannel) -> None:
        if self._publish_channel is channel:
            self._publish_channel = None
        await _close_channel(channel)

    # -- topology -------------------------------------------------------------------------------

    async def _declare_exchanges(self) -> None:
        channel = await self._open_channel(confirms=False)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await channel.declare_exchange(EXCHANGE_NAME, ExchangeType.TOPIC, durable=True)
                await channel.declare_exchange(DEAD_EXCHANGE_NAME, ExchangeType.TOPIC, durable=True)
        except _UNAVAILABLE as exc:
            raise TransportUnavailable(f"cannot declare exchanges: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            raise TransportError(f"cannot declare exchanges: {exc!r}") from exc
        finally:
            await _close_channel(channel)

    async def declare_inbox(self, account_id: str) -> None:
        """Declare (idempotently) the exchanges, the account's inbox and its dead-letter queue."""
        check_account_id(account_id)
        channel = await self._open_channel(confirms=False)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                exchange = await channel.declare_exchange(
                    EXCHANGE_NAME, ExchangeType.TOPIC, durable=True
                )
                dead_exchange = await channel.declare_exchange(
                    DEAD_EXCHANGE_NAME, ExchangeType.TOPIC, durable=True
                )
                inbox = await channel.declare_queue(
                    inbox_queue(account_id),
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-delivery-limit": DELIVERY_LIMIT,
                        "x-dead-letter-exchange": DEAD_EXCHANGE_NAME,
                        "x-dead-letter-routing-key": account_id,
                        # The broker's own dead-lettering (delivery limit) is at-most-once
                        # unless asked; at-least-once needs reject-publish overflow.
                        "x-dead-letter-strategy": "at-least-once",
                        "x-overflow": "reject-publish",
                        # Order holds within one consumer; a second node process waits.
                        "x-single-active-consumer": True,
                    },
                )
                await inbox.bind(exchange, routing_key=account_id)
                # No delivery limit here: peeking requeues and every requeue counts.
                dead = await channel.declare_queue(
                    dead_queue(account_id), durable=True, arguments={"x-queue-type": "quorum"}
                )
                await dead.bind(dead_exchange, routing_key=account_id)
                # V3: a quorum queue can exist without a usable leader after a crash; the
                # passive declare must come back within the timeout. Counts are not trusted.
                await channel.declare_queue(inbox_queue(account_id), passive=True)
        except _UNAVAILABLE as exc:
            raise TransportUnavailable(f"cannot declare inbox {account_id!r}: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            raise TransportError(f"cannot declare inbox {account_id!r}: {exc!r}") from exc
        finally:
            await _close_channel(channel)

    async def delete_inbox(self, account_id: str) -> None:
        """Delete the account's inbox and dead-letter queue; missing ones are ignored."""
        for name in (inbox_queue(account_id), dead_queue(account_id)):
            channel = await self._open_channel(confirms=False)
            try:
                async with asyncio.timeout(OPERATION_TIMEOUT):
                    await channel.queue_delete(name, if_unused=False, if_empty=False)
            except aiormq.exceptions.ChannelNotFoundEntity:
                pass
            except _UNAVAILABLE as exc:
                raise TransportUnavailable(f"cannot delete {name}: {exc!r}") from exc
            except aiormq.exceptions.AMQPError as exc:
                raise TransportError(f"cannot delete {name}: {exc!r}") from exc
            finally:
                await _close_channel(channel)

    # -- publishing -----------------------------------------------------------------------------

    async def publish(
        self,
        *,
        to: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish to ``to``'s inbox and wait for the confirm."""
        check_account_id(to)
        await self._publish(EXCHANGE_NAME, to, _message(body, message_id, dict(headers or {})))

    async def _publish(
        self, exchange_name: str, routing_key: str, message: aio_pika.Message
    ) -> None:
        """Publish mandatory and persistent on the confirm channel; map every failure."""
        channel = await self._get_publish_channel()
        try:
            exchange = await channel.get_exchange(exchange_name, ensure=False)
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await exchange.publish(message, routing_key=routing_key, mandatory=True)
        except aiormq.exceptions.PublishError as exc:
            raise Unroutable(f"no queue bound for {routing_key!r} on {exchange_name}") from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise TransportError(f"broker refused the message (nack): {exc!r}") from exc
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            # A missing exchange closes the channel (404); the next publish opens a new one.
            await self._drop_publish_channel(channel)
            raise Unroutable(f"exchange {exchange_name} does not exist: {exc!r}") from exc
        except TimeoutError as exc:
            # The confirm may still come; this channel's state is unknown, so drop it.
            await self._drop_publish_channel(channel)
            raise TransportUnavailable(f"no confirm within {PUBLISH_TIMEOUT}s") from exc
        except _UNAVAILABLE as exc:
            await self._drop_publish_channel(channel)
            raise TransportUnavailable(f"publish failed: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            await self._drop_publish_channel(channel)
            raise TransportError(f"publish failed: {exc!r}") from exc

    # -- consuming ------------------------------------------------------------------------------

    async def consume(self, account_id: str, handler: Handler) -> None:
        """Feed the account's inbox to ``handler`` one delivery at a time until cancelled."""
        check_account_id(account_id)
        channel = await self._open_channel(confirms=False)
        consumer = _Consumer(channel=channel, wake=asyncio.Queue())

        def on_close(_sender: Any, _exc: BaseException | None) -> None:
            consumer.wake.put_nowait(_Signal.CLOSED)

        def on_cancel(_frame: Any) -> None:
            # The broker cancels a consumer when its queue is deleted.
            consumer.wake.put_nowait(_Signal.CANCELLED)

        async def on_message(message: AbstractIncomingMessage) -> None:
            consumer.wake.put_nowait(message)

        self._consumers.add(consumer)
        try:
            channel.close_callbacks.add(on_close)
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(on_cancel)
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await channel.set_qos(prefetch_count=self._prefetch)
                queue = await channel.get_queue(inbox_queue(account_id), ensure=False)
                await queue.consume(on_message)
            await self._consume_loop(account_id, consumer, queue, handler)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise TransportError(f"inbox {inbox_queue(account_id)} does not exist") from exc
        except _CONSUMER_LOST as exc:
            if consumer.stopping:
                return
            raise TransportUnavailable(f"consumer of {account_id!r} lost: {exc!r}") from exc
        finally:
            self._consumers.discard(consumer)
            # Closing the channel hands every unacked delivery back to the queue.
            await _close_channel(channel)

    async def _consume_loop(
        self,
        account_id: str,
        consumer: _Consumer,
        queue: AbstractQueue,
        handler: Handler,
    ) -> None:
        """Process deliveries in order until the channel closes."""
        held: deque[AbstractIncomingMessage] = deque()
        awaiting: str | None = None
        awaiting_until = 0.0
        while True:
            if held and awaiting is None:
                message = held.popleft()
            else:
                wait = IDLE_CHECK if awaiting is None else awaiting_until - time.monotonic()
                try:
                    # Not asyncio.wait_for: on Python 3.11 it can drop a cancellation.
                    async with asyncio.timeout(max(wait, 0.0)):
                        item = await consumer.wake.get()
                except TimeoutError:
                    if awaiting is not None:
                        log.warning(
                            "retried message %s of %s did not come back within %ss; "
                            "going on with the held deliveries",
                            awaiting,
                            account_id,
                            REDELIVERY_WAIT,
                        )
                        awaiting = None
                        continue
                    if not consumer.channel.is_closed and self.connected:
                        continue
                    item = _Signal.CLOSED
                if consumer.stopping:
                    return
                if item is _Signal.CANCELLED:
                    raise TransportError(f"the broker cancelled the consumer of {queue.name}")
                if item is _Signal.CLOSED:
                    raise TransportUnavailable(f"consumer channel of {queue.name} closed")
                if awaiting is not None:
                    if item.redelivered and item.message_id == awaiting:
                        awaiting = None
                    else:
                        # Prefetched before the retried message came back: keep queue order.
                        held.append(item)
                        continue
                message = item
            awaiting = await self._process(account_id, message, handler)
            if awaiting is not None:
                awaiting_until = time.monotonic() + REDELIVERY_WAIT

    async def _process(
        self, account_id: str, message: AbstractIncomingMessage, handler: Handler
    ) -> str | None:
        """Run the handler on one delivery and settle it; return the id to wait for on RETRY."""
        count = delivery_count_of(message.headers)
        delivery = Delivery(
            body=message.body,
            message_id=message.message_id,
            redelivered=bool(message.redelivered),
            delivery_count=count,
            headers=clean_headers(message.headers),
        )
        try:
            outcome = await handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("handler failed on %s of %s; retrying", message.message_id, account_id)
            outcome = Outcome.retry(type(exc).__name__)

        if outcome.disposition is Disposition.RETRY:
            # V5: every requeue counts toward the delivery limit; do not spin through it.
            await asyncio.sleep(retry_backoff(self._retry_backoff, count, self._max_retry_backoff))
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await message.nack(requeue=True)
            # Past the limit the broker dead-letters it instead of handing it back.
            if message.message_id and count < DELIVERY_LIMIT:
                return message.message_id
            return None
        settle = asyncio.ensure_future(self._settle(account_id, message, outcome))
        try:
            await asyncio.shield(settle)
        except asyncio.CancelledError:
            # Stopped after the handler decided: finish settling (each step is bounded) so the
            # decided message is not handed back to be applied again, or dead-lettered twice.
            with contextlib.suppress(Exception):
                await settle
            raise
        return None

    async def _settle(
        self, account_id: str, message: AbstractIncomingMessage, outcome: Outcome
    ) -> None:
        """Ack a delivery, or dead-letter it with its reason and then ack it."""
        if outcome.disposition is Disposition.ACK:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await message.ack()
            return
        try:
            await self._publish(
                DEAD_EXCHANGE_NAME,
                account_id,
                _message(
                    message.body,
                    message.message_id,
                    {
                        **clean_headers(message.headers),
                        REASON_HEADER: outcome.reason,
                        ACCOUNT_HEADER: account_id,
                    },
                ),
            )
        except TransportError:
            log.exception("dead-letter publish failed for %s; rejecting", message.message_id)
            # The inbox's DLX (tix.dead, routing key = account) takes it instead.
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await message.reject(requeue=False)
            return
        async with asyncio.timeout(SETTLE_TIMEOUT):
            await message.ack()

    # -- dead letters ---------------------------------------------------------------------------

    async def dead_letters(self, account_id: str, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` messages of the account's dead-letter queue (not removed)."""
        check_account_id(account_id)
        channel = await self._open_channel(confirms=False)
        taken: list[AbstractIncomingMessage] = []
        try:
            queue = await channel.get_queue(dead_queue(account_id), ensure=False)
            for _ in range(limit):
                got = await queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT)
                if got is None:
                    break
                taken.append(got)
            # Requeue in the order taken so the queue keeps its order.
            for got in taken:
                await got.nack(requeue=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return []
        except _UNAVAILABLE as exc:
            raise TransportUnavailable(f"cannot read dead letters: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            raise TransportError(f"cannot read dead letters: {exc!r}") from exc
        finally:
            await _close_channel(channel)
        return [
            DeadLetter(
                body=got.body,
                message_id=got.message_id,
                reason=dead_reason_of(got.headers),
                headers=clean_headers(got.headers),
            )
            for got in taken
        ]

    async def replay_dead(self, account_id: str, *, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters back into the account's inbox; return how many.

        A replayed message that dies again at once (the node still refuses it) lands behind
        the others; when this call meets a message id it has already replayed, it puts that one
        back and stops, so it never replays a message twice. (Not the queue's message count
        from a passive declare: on a quorum queue it can lag a requeue that just happened.)
        """
        check_account_id(account_id)
        channel = await self._open_channel(confirms=False)
        moved = 0
        replayed: set[str] = set()
        try:
            queue = await channel.get_queue(dead_queue(account_id), ensure=False)
            for _ in range(limit):
                got = await queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT)
                if got is None:
                    break
                if got.message_id is not None and got.message_id in replayed:
                    await got.nack(requeue=True)
                    break
                try:
                    await self._publish(
                        EXCHANGE_NAME,
                        account_id,
                        _message(got.body, got.message_id, clean_headers(got.headers)),
                    )
                except BaseException:
                    with contextlib.suppress(Exception):
                        await got.nack(requeue=True)
                    raise
                await got.ack()
                moved += 1
                if got.message_id is not None:
                    replayed.add(got.message_id)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return moved
        except _UNAVAILABLE as exc:
            raise TransportUnavailable(f"cannot replay dead letters: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            raise TransportError(f"cannot replay dead letters: {exc!r}") from exc
        finally:
            await _close_channel(channel)
        return moved


def _message(body: bytes, message_id: str | None, headers: dict[str, str]) -> aio_pika.Message:
    """A persistent JSON message."""
    return aio_pika.Message(
        body,
        headers=dict(headers),
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message_id,
    )


async def _close_channel(channel: AbstractChannel) -> None:
    """Close a channel if it is open; errors and slowness are not the caller's problem."""
    if channel.is_closed:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await channel.close()
