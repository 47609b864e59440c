"""The transport port: how envelopes move between accounts.

Two implementations pass one contract suite (``tests/contract/test_transport_contract.py``):
``exchange.amqp.AmqpTransport`` on RabbitMQ (production and CI) and
``exchange.inprocess.InProcessTransport`` (the embedded default for one machine).

Semantics every implementation keeps:

* ``publish`` returns only once the message is durably accepted (publisher confirm); it raises
  ``Unroutable`` when no inbox is bound for the recipient and ``TransportUnavailable`` when the
  broker is away. A message is never silently dropped.
* ``consume`` hands deliveries of one inbox to the handler **one at a time, in queue order**, and
  settles each one only after the handler returned: ``ACK`` removes it, ``RETRY`` puts it back
  (counted against the inbox's delivery limit; past it the broker dead-letters it), and
  ``DEAD_LETTER`` moves it to the account's dead-letter queue with the handler's reason.
* ``consume`` runs until cancelled; it returns normally after ``close()``, raises
  ``TransportUnavailable`` when the connection drops and ``TransportError`` when the inbox is
  deleted under it. After a ``RETRY`` it holds later deliveries until the retried one is back,
  so a retry never reorders the inbox.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

EXCHANGE_NAME = "tix.exchange"
DEAD_EXCHANGE_NAME = "tix.dead"
DELIVERY_LIMIT = 20


def inbox_queue(account_id: str) -> str:
    return f"tix.inbox.{account_id}"


def dead_queue(account_id: str) -> str:
    return f"tix.dead.{account_id}"


class Disposition(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Outcome:
    """What the handler decided for one delivery."""

    disposition: Disposition
    reason: str = ""

    @classmethod
    def ack(cls) -> Outcome:
        return cls(Disposition.ACK)

    @classmethod
    def retry(cls, reason: str) -> Outcome:
        return cls(Disposition.RETRY, reason)

    @classmethod
    def dead(cls, reason: str) -> Outcome:
        return cls(Disposition.DEAD_LETTER, reason)


@dataclass(frozen=True)
class Delivery:
    """One message taken from an inbox."""

    body: bytes
    message_id: str | None
    redelivered: bool
    delivery_count: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    # The broker-validated AMQP user id (``exchange.broker_identity``); None when not set.
    user_id: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message in an account's dead-letter queue, with the reason it was put there."""

    body: bytes
    message_id: str | None
    reason: str
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Delivery], Awaitable[Outcome]]


class Transport(ABC):
    """Port of the message transport; see the module docstring for the contract."""

    name: str

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection; raise ``TransportUnavailable`` if the broker cannot be reached."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection and stop every consumer; safe to call twice."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the connection is open now."""

    @abstractmethod
    async def declare_inbox(self, account_id: str) -> None:
        """Declare (idempotently) the exchanges, the account's inbox and its dead-letter queue."""

    @abstractmethod
    async def delete_inbox(self, account_id: str) -> None:
        """Delete the account's inbox and dead-letter queue (tests and account removal)."""

    @abstractmethod
    async def publish(
        self,
        *,
        to: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish to ``to``'s inbox and wait for the confirm (see the module docstring)."""

    @abstractmethod
    async def consume(self, account_id: str, handler: Handler) -> None:
        """Feed the account's inbox to ``handler`` one delivery at a time until cancelled."""

    @abstractmethod
    async def dead_letters(self, account_id: str, *, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` messages of the account's dead-letter queue (not removed)."""

    @abstractmethod
    async def replay_dead(self, account_id: str, *, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters back into the account's inbox; return how many.

        A message that dies again while the call runs is not replayed twice by it."""
