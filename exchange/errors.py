"""Exceptions of the exchange layer.

``ExchangeError``
├── ``RejectedMessage``     an inbound message failed a receiver check; carries a stable ``reason``
├── ``TransportError``      the transport could not do what was asked
│   ├── ``TransportUnavailable``  the broker is away; try again later
│   └── ``Unroutable``            the broker has no queue for that recipient (mandatory publish)
└── ``KeyFileError``        a key file is missing, unreadable or has unsafe permissions

The edges map them: a ``RejectedMessage`` is dead-lettered with its reason and acked,
``TransportUnavailable`` makes the relay back off, ``Unroutable`` marks the outbox row.
"""

from __future__ import annotations


class ExchangeError(Exception):
    """Base of every error raised by the exchange layer."""


class RejectedMessage(ExchangeError):
    """An inbound message failed a receiver check and must change nothing."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TransportError(ExchangeError):
    """The transport could not carry out an operation."""


class TransportUnavailable(TransportError):
    """The broker cannot be reached now; the caller retries later."""


class Unroutable(TransportError):
    """No queue is bound for the recipient: the broker returned the mandatory message."""


class KeyFileError(ExchangeError):
    """A key file could not be used."""
