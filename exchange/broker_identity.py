"""The AMQP transport of a node that has its own broker user (see ``exchange.provisioning``).

``IdentityAmqpTransport`` is ``AmqpTransport`` with three differences:

* every message it publishes carries the AMQP ``user_id`` property set to its broker user (the
  user name in its URL, which is its account id); RabbitMQ refuses a publish whose ``user_id``
  is not the connection's user, so the property is proof of the sending account;
* every ``Delivery`` it hands to a handler carries the ``user_id`` the message came with, for
  the inbox to compare with the signed ``from`` (``account.messaging.inbox``);
* it declares nothing: with configure permission ``^$`` it only checks, passively, that the
  exchanges and its own queues exist (the hub declared them when it provisioned the account).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from exchange.amqp import OPERATION_TIMEOUT, AmqpTransport, check_account_id
from exchange.errors import TransportError, TransportUnavailable
from exchange.transport import (
    DEAD_EXCHANGE_NAME,
    EXCHANGE_NAME,
    Delivery,
    Handler,
    Outcome,
    dead_queue,
    inbox_queue,
)

__all__ = ["IdentityAmqpTransport", "broker_user_of"]

_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    asyncio.TimeoutError,
)


def broker_user_of(url: str) -> str:
    """The user name in an AMQP URL (the account's broker user)."""
    user = unquote(urlsplit(url).username or "")
    check_account_id(user)
    return user


class IdentityAmqpTransport(AmqpTransport):
    """``AmqpTransport`` for a provisioned account; see the module docstring."""

    name = "amqp"

    def __init__(self, url: str, *, heartbeat: int = 10, prefetch: int = 64) -> None:
        super().__init__(url, heartbeat=heartbeat, prefetch=prefetch)
        self.user_id = broker_user_of(url)

    async def _publish(
        self, exchange_name: str, routing_key: str, message: aio_pika.Message
    ) -> None:
        message.user_id = self.user_id
        await super()._publish(exchange_name, routing_key, message)

    async def _process(
        self, account_id: str, message: AbstractIncomingMessage, handler: Handler
    ) -> str | None:
        user_id = message.user_id

        async def with_user(delivery: Delivery) -> Outcome:
            return await handler(dataclasses.replace(delivery, user_id=user_id))

        return await super()._process(account_id, message, with_user)

    async def _check(self, what: str, check: Callable[[AbstractChannel], Awaitable[None]]) -> None:
        channel: AbstractChannel = await self._open_channel(confirms=False)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                await check(channel)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise TransportError(f"{what} is not provisioned on the broker: {exc!r}") from exc
        except aiormq.exceptions.ChannelAccessRefused as exc:
            raise TransportError(f"the broker refuses {what} to {self.user_id}: {exc!r}") from exc
        except _UNAVAILABLE as exc:
            raise TransportUnavailable(f"cannot check {what}: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            raise TransportError(f"cannot check {what}: {exc!r}") from exc
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def _declare_exchanges(self) -> None:
        async def passive(channel: AbstractChannel) -> None:
            for name in (EXCHANGE_NAME, DEAD_EXCHANGE_NAME):
                await channel.get_exchange(name, ensure=True)

        await self._check("the exchanges", passive)

    async def declare_inbox(self, account_id: str) -> None:
        """Check (passively) that the hub declared the account's inbox and dead-letter queue."""
        check_account_id(account_id)

        async def passive(channel: AbstractChannel) -> None:
            for name in (inbox_queue(account_id), dead_queue(account_id)):
                await channel.get_queue(name, ensure=True)

        await self._check(f"the inbox of {account_id}", passive)
