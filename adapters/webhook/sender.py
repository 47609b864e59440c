"""Delivery of queued events to the help desks: signed, in order, retried with backoff.

Each participant's oldest pending event is POSTed to its URL with ``X-Tix-Signature``
(HMAC-SHA256 over the timestamp and the exact body), ``X-Tix-Event`` and ``X-Tix-Event-Id``.
A 2xx delivers it; anything else schedules a retry (exponential, capped, with jitter) for as
long as it takes, and that participant's later events wait behind it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.db import session_scope
from account.tmf.mapping import backoff_seconds, jitter
from adapters.webhook import signing
from adapters.webhook.models import WebhookOutbox, WebhookParticipant, WebhookSeen
from adapters.webhook.participants import previous_secrets
from adapters.webhook.settings import WebhookSettings
from exchange.clock import utcnow
from exchange.egress import AsyncGuardedTransport, EgressPolicy

log = logging.getLogger("tix.webhook")


@dataclass(frozen=True)
class Due:
    id: int
    url: str
    secret: str
    also: tuple[bytes, ...]  # the rolled secret while it still signs
    event: str
    event_id: str
    payload: dict[str, Any]


def due(engine: Engine) -> list[Due]:
    now = utcnow()
    with Session(engine) as session:
        heads = (
            select(func.min(WebhookOutbox.id))
            .where(WebhookOutbox.state == "pending")
            .group_by(col(WebhookOutbox.account_id))
        )
        rows = session.exec(
            select(WebhookOutbox, WebhookParticipant)
            .join(
                WebhookParticipant,
                col(WebhookParticipant.account_id) == col(WebhookOutbox.account_id),
            )
            .where(col(WebhookOutbox.id).in_(heads))
            .where(col(WebhookOutbox.next_attempt_at) <= now)
        ).all()
        return [
            Due(
                id=int(o.id or 0),
                url=p.url,
                secret=p.secret,
                also=previous_secrets(p, now),
                event=o.event,
                event_id=o.event_id,
                payload=o.payload,
            )
            for o, p in rows
        ]


def record(engine: Engine, row_id: int, error: str | None, settings: WebhookSettings) -> None:
    with session_scope(engine) as session:
        row = session.get(WebhookOutbox, row_id)
        if row is None:
            return
        if error is None:
            row.state = "sent"
            row.sent_at = utcnow()
            row.last_error = None
        else:
            row.attempts += 1
            delay = backoff_seconds(
                row.attempts,
                initial=settings.retry_initial_seconds,
                cap=settings.retry_max_seconds,
                jitter=jitter(),
            )
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            row.last_error = error[:500]
        session.add(row)


def forget_signatures(engine: Engine, settings: WebhookSettings) -> None:
    """Drop remembered inbound signatures older than twice the tolerance (stale anyway)."""
    with session_scope(engine) as session:
        cutoff = utcnow() - timedelta(seconds=2 * settings.tolerance_seconds)
        session.execute(delete(WebhookSeen).where(col(WebhookSeen.seen_at) < cutoff))


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def _post(client: httpx.AsyncClient, item: Due) -> str | None:
    body = body_of(item.payload)
    timestamp = int(utcnow().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tix-webhook-adapter",
        signing.HEADER: signing.header(item.secret.encode(), timestamp, body, also=item.also),
        "X-Tix-Event": item.event,
        "X-Tix-Event-Id": item.event_id,
    }
    try:
        response = await client.post(item.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def deliver_once(engine: Engine, client: httpx.AsyncClient, settings: WebhookSettings) -> int:
    items = await asyncio.to_thread(due, engine)
    if not items:
        return 0
    errors = await asyncio.gather(*(_post(client, item) for item in items))
    for item, error in zip(items, errors, strict=True):
        if error is not None:
            log.info("webhook %s to %s failed: %s", item.event_id, item.url, error)
        await asyncio.to_thread(record, engine, item.id, error, settings)
    return len(items)


def client_for(settings: WebhookSettings, policy: EgressPolicy) -> httpx.AsyncClient:
    """The sender's client: it connects only where the node's egress policy allows
    (``TIX_EGRESS_ALLOW``, exchange/egress.py), so a participant URL whose name resolves to a
    private or loopback address is refused at connect time (retried like any failure)."""
    return httpx.AsyncClient(
        timeout=settings.timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        transport=AsyncGuardedTransport(policy),
    )


async def run(engine: Engine, settings: WebhookSettings, policy: EgressPolicy) -> None:
    """Deliver until cancelled."""
    rounds = 0
    async with client_for(settings, policy) as client:
        while True:
            sent = 0
            try:
                sent = await deliver_once(engine, client, settings)
                rounds += 1
                if rounds % 100 == 1:
                    await asyncio.to_thread(forget_signatures, engine, settings)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook sender round failed; trying again")
            if not sent:
                await asyncio.sleep(settings.poll_seconds)
