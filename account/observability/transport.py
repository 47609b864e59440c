"""A transport that counts what passes through it and carries trace and log context inbound.

``ObservedTransport`` wraps any ``exchange.transport.Transport`` (the node builds it in
``account.bootstrap.build_transport``). Outbound it counts confirmed publishes by message type;
inbound it counts deliveries by disposition and redeliveries, and runs the handler inside a span
continuing the delivery's ``traceparent`` header and a log context with the message id, type and
subject, so every line and every outbox row the message causes carries them. With
OpenTelemetry on (``account.observability.otel``) a publish is a producer span whose context
replaces the row's in the ``traceparent`` header, and a delivery is a consumer span with an
``apply`` span inside it for the handler.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from account.observability import logs, tracing
from exchange.transport import DeadLetter, Delivery, Handler, Outcome, Transport

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TYPE_RE = re.compile(r"^[a-z]{1,20}\.[a-z_]{1,20}$")
# Subjects of these types are delegation ids; link.* messages have the link as subject.
_DELEGATION_PREFIXES = ("delegation.", "ticket.", "sla.", "resolution.", "rating")


@dataclass
class TransportCounters:
    """Counts since this process started (read by ``account.observability.metrics``)."""

    published: Counter[str] = field(default_factory=Counter)  # by message type
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (disposition, reason)
    redeliveries: int = 0


def _message_type(headers: Mapping[str, str] | None) -> str:
    value = (headers or {}).get("x-tix-type", "")
    return value if _TYPE_RE.match(value) else "unknown"


def _subject(body: bytes, message_type: str) -> str | None:
    """The delegation id of an inbound envelope, for the logs only (never trusted)."""
    if not message_type.startswith(_DELEGATION_PREFIXES) or len(body) > 256 * 1024:
        return None
    try:
        subject = json.loads(body).get("subject")
    except (ValueError, AttributeError, RecursionError):
        return None
    return subject if isinstance(subject, str) and _UUID_RE.match(subject) else None


def _messaging(destination: str, message_id: str, message_type: str) -> dict[str, str]:
    """OpenTelemetry messaging attributes of one envelope (metadata only, never the body)."""
    return {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": destination,
        "messaging.message.id": message_id,
        "tix.message_type": message_type,
    }


class ObservedTransport(Transport):
    """Delegates everything to ``inner``; see the module docstring."""

    def __init__(self, inner: Transport, counters: TransportCounters | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.counters = counters or TransportCounters()

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
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
        message_type = _message_type(headers)
        if not tracing.recording():
            await self.inner.publish(to=to, body=body, message_id=message_id, headers=headers)
        else:
            # The publish span continues the outbox row's span, and the envelope travels with
            # the publish span's own traceparent, so the receiver's spans hang under it.
            with tracing.span(
                (headers or {}).get(tracing.HEADER),
                name=f"publish {message_type}",
                kind="producer",
                attributes=_messaging(to, message_id, message_type),
            ) as span:
                headers = {**(headers or {}), tracing.HEADER: span.traceparent}
                await self.inner.publish(to=to, body=body, message_id=message_id, headers=headers)
        self.counters.published[message_type] += 1

    async def consume(self, account_id: str, handler: Handler) -> None:
        async def observed(delivery: Delivery) -> Outcome:
            if delivery.redelivered or delivery.delivery_count > 0:
                self.counters.redeliveries += 1
            message_type = _message_type(delivery.headers)
            with (
                tracing.span(
                    delivery.headers.get(tracing.HEADER),
                    name=f"process {message_type}",
                    kind="consumer",
                    attributes=_messaging(account_id, delivery.message_id or "", message_type),
                ),
                logs.log_context(
                    account=account_id,
                    message_id=delivery.message_id,
                    message_type=message_type,
                    delegation_id=_subject(delivery.body, message_type),
                ),
            ):
                if tracing.recording():
                    with tracing.span(tracing.current(), name="apply"):
                        outcome = await handler(delivery)
                        tracing.annotate(**{"tix.outcome": outcome.disposition.value})
                    tracing.annotate(**{"tix.outcome": outcome.disposition.value})
                else:
                    outcome = await handler(delivery)
            self.counters.deliveries[(outcome.disposition.value, outcome.reason[:40])] += 1
            return outcome

        await self.inner.consume(account_id, observed)

    async def dead_letters(self, account_id: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(account_id, limit=limit)

    async def replay_dead(self, account_id: str, *, limit: int = 100) -> int:
        return await self.inner.replay_dead(account_id, limit=limit)
