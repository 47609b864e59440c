"""Durable TMF621 event delivery: timeline → per-hub queue → listener callbacks.

``derive`` reads the ticket timeline (``TicketEvent``) past a cursor and, in the same
transaction that moves the cursor, writes one ``TmfNotification`` per event and listening hub,
rendered with the hub owner's visibility. Everything that changes a ticket writes a timeline
event (local changes, partners' messages, roll-ups from the chain), so nothing needs hooking in
the ticket services. Ids the cursor passed that were not visible yet (a transaction that had
not committed) are remembered as gaps and read again until they show up or
``TIX_TMF_GAP_SECONDS`` pass.

``deliver_once`` POSTs the oldest pending event of each hub to its callback; a 2xx marks it
delivered, anything else schedules a retry with capped exponential backoff and jitter, for as
long as the hub exists; later events of that hub wait behind it, so each listener sees its
events in order. ``run`` loops both with the node.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.context import Identity, NodeContext
from account.db import session_scope
from account.delegations import service as delegation_service
from account.errors import NotFound
from account.tickets import service as ticket_service
from account.tickets.models import Ticket, TicketEvent
from account.tmf import mapping
from account.tmf import service as tmf_service
from account.tmf.config import TmfSettings
from account.tmf.models import TmfCursor, TmfHub, TmfNotification, TmfTicketInfo
from account.users.models import User
from exchange.clock import aware, instant, parse_instant, utcnow
from exchange.egress import AsyncGuardedTransport, EgressPolicy

log = logging.getLogger("tix.tmf")

MAX_NEW_GAPS = 1000
KEEP_DELIVERED = timedelta(days=7)


def derive(engine: Engine, *, identity: Identity, settings: TmfSettings, base_url: str = "") -> int:
    """Queue the events of timeline entries past the cursor; return how many entries it read."""
    with session_scope(engine) as session:
        cursor = session.get(TmfCursor, identity.account_id)
        if cursor is None:  # first start: announce what happens from now on
            top = session.exec(select(func.max(TicketEvent.id))).one()
            session.add(TmfCursor(account_id=identity.account_id, last_id=int(top or 0)))
            return 0
        top = session.exec(select(func.max(TicketEvent.id))).one()
        if not cursor.gaps and int(top or 0) <= cursor.last_id:
            return 0  # idle: one cheap query
        listening = session.exec(
            select(TmfHub.id).where(TmfHub.account_id == identity.account_id).limit(1)
        ).first()
        if listening is None:
            # Nobody listens: skip ahead without reading the events (a hub hears only what
            # happens after it subscribed, so nothing is lost). Was 8 % of a busy node's CPU.
            cursor.last_id = max(cursor.last_id, int(top or 0))
            cursor.gaps = {}
            session.add(cursor)
            return 0
        gap_ids = [int(k) for k in cursor.gaps]
        events = list(
            session.exec(
                select(TicketEvent)
                .where(or_(col(TicketEvent.id) > cursor.last_id, col(TicketEvent.id).in_(gap_ids)))
                .order_by(col(TicketEvent.id))
                .limit(settings.batch)
            ).all()
        )
        now = utcnow()
        gaps = {k: v for k, v in cursor.gaps.items() if int(k) not in {e.id for e in events}}
        last = cursor.last_id
        new_gaps = 0
        for event in events:
            assert event.id is not None
            if event.id <= last:
                continue
            for missing in range(last + 1, event.id):
                if new_gaps < MAX_NEW_GAPS:
                    gaps[str(missing)] = instant(now)
                    new_gaps += 1
            last = event.id
        expired = now - timedelta(seconds=settings.gap_seconds)
        cursor.gaps = {k: v for k, v in gaps.items() if parse_instant(v) > expired}
        cursor.last_id = last
        session.add(cursor)
        hubs = list(session.exec(select(TmfHub).where(TmfHub.account_id == identity.account_id)))
        announced: set[tuple[str, int]] = set()
        for event in events:
            _queue(session, event, hubs, announced, identity=identity, base_url=base_url)
        if not events:
            return 0
        session.execute(
            delete(TmfNotification).where(
                col(TmfNotification.state) == "delivered",
                col(TmfNotification.delivered_at) < now - KEEP_DELIVERED,
            )
        )
        return len(events)


def _queue(
    session: Session,
    event: TicketEvent,
    hubs: list[TmfHub],
    announced: set[tuple[str, int]],
    *,
    identity: Identity,
    base_url: str,
) -> None:
    """Queue the events of one timeline entry for every hub that may and wants to hear it.

    Payloads carry the ticket as it is now, so within one batch a hub that already got an event
    of this ticket gets no further attribute-change events for it (they would say the same).
    """
    ticket = session.get(Ticket, event.ticket_id)
    if ticket is None or ticket.account_id != identity.account_id:
        return
    assert ticket.id is not None
    info = session.get(TmfTicketInfo, ticket.id) or TmfTicketInfo(ticket_id=ticket.id)
    states = [d.state for d in delegation_service.outgoing(session=session, ticket=ticket)]
    status = mapping.tmf_status(ticket.status, states)
    types = mapping.event_types(event.kind, info.notified_status, status)
    if info.notified_status != status:
        info.notified_status = status
        session.add(info)
    if not types:
        return
    rendered: dict[int, dict[str, Any]] = {}
    for hub in hubs:
        if aware(hub.created_at) > aware(event.at):
            continue  # it subscribed after this happened
        try:
            wanted = mapping.parse_query(hub.query)
        except ValueError:
            continue
        chosen = [t for t in types if wanted is None or t in wanted]
        if chosen == [mapping.ATTRIBUTE_CHANGE] and (hub.id, ticket.id) in announced:
            continue
        owner = session.get(User, hub.owner_id)
        if not chosen or owner is None or not owner.active or owner.id is None:
            continue
        if not mapping.event_visible(event.kind, event.detail, owner.role):
            continue
        if owner.id not in rendered:
            try:
                ticket_service.get_visible(
                    session=session,
                    account_id=identity.account_id,
                    user=owner,
                    number=ticket.number,
                )
            except NotFound:
                continue
            rendered[owner.id] = tmf_service.render(
                session=session, identity=identity, ticket=ticket, user=owner, base_url=base_url
            )
        announced.add((hub.id, ticket.id))
        for event_type in chosen:
            event_id = str(uuid.uuid4())
            session.add(
                TmfNotification(
                    hub_id=hub.id,
                    event_id=event_id,
                    event_type=event_type,
                    ticket_id=ticket.id,
                    payload=mapping.event(
                        event_id=event_id,
                        event_type=event_type,
                        at=event.at,
                        ticket=rendered[owner.id],
                        reporting=(identity.account_id, identity.label),
                        information_required=event_type == mapping.INFORMATION_REQUIRED,
                    ),
                )
            )


@dataclass(frozen=True)
class Due:
    id: int
    callback: str
    payload: dict[str, Any]


def due(engine: Engine) -> list[Due]:
    """The oldest pending event of each hub, if its time has come."""
    with Session(engine) as session:
        heads = (
            select(func.min(TmfNotification.id))
            .where(TmfNotification.state == "pending")
            .group_by(col(TmfNotification.hub_id))
        )
        rows = session.exec(
            select(TmfNotification, TmfHub)
            .join(TmfHub, col(TmfHub.id) == col(TmfNotification.hub_id))
            .where(col(TmfNotification.id).in_(heads))
            .where(col(TmfNotification.next_attempt_at) <= utcnow())
        ).all()
        return [Due(id=int(n.id or 0), callback=h.callback, payload=n.payload) for n, h in rows]


def record(engine: Engine, notification_id: int, error: str | None, settings: TmfSettings) -> None:
    """Mark an attempt: delivered, or a retry after backoff (the event is never dropped)."""
    with session_scope(engine) as session:
        row = session.get(TmfNotification, notification_id)
        if row is None:  # its hub was deleted meanwhile
            return
        now = utcnow()
        if error is None:
            row.state = "delivered"
            row.delivered_at = now
            row.last_error = None
        else:
            row.attempts += 1
            delay = mapping.backoff_seconds(
                row.attempts,
                initial=settings.retry_initial_seconds,
                cap=settings.retry_max_seconds,
                jitter=mapping.jitter(),
            )
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = error[:500]
        session.add(row)


async def _post(client: httpx.AsyncClient, item: Due) -> str | None:
    try:
        response = await client.post(
            item.callback,
            json=item.payload,
            headers={"User-Agent": "tix-tmf621-notifier"},
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def deliver_once(engine: Engine, client: httpx.AsyncClient, settings: TmfSettings) -> int:
    """One attempt for each hub's oldest due event; return how many were attempted."""
    items = await asyncio.to_thread(due, engine)
    if not items:
        return 0
    errors = await asyncio.gather(*(_post(client, item) for item in items))
    for item, error in zip(items, errors, strict=True):
        if error is not None:
            log.info("TMF event %s to %s failed: %s", item.id, item.callback, error)
        await asyncio.to_thread(record, engine, item.id, error, settings)
    return len(items)


def client_for(settings: TmfSettings, policy: EgressPolicy | None = None) -> httpx.AsyncClient:
    """The HTTP client for callbacks: no redirects followed, no proxies from the environment,
    and connections only where the node's egress ``policy`` allows (public addresses unless
    ``TIX_EGRESS_ALLOW`` lists more): a TMF client chooses its callback URL (B18)."""
    return httpx.AsyncClient(
        timeout=settings.timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        transport=AsyncGuardedTransport(policy or EgressPolicy()),
    )


async def serve(ctx: NodeContext) -> None:
    """The notifier of a running node (``NodeRuntime.start``), configured by ``TIX_TMF_*``."""
    await run(
        ctx.engine,
        ctx.identity,
        TmfSettings(),
        base_url=ctx.settings.public_url,
        policy=ctx.settings.egress_policy,
    )


async def run(
    engine: Engine,
    identity: Identity,
    settings: TmfSettings,
    *,
    base_url: str = "",
    policy: EgressPolicy | None = None,
) -> None:
    """Derive and deliver until cancelled; errors are logged and the loop goes on."""
    async with client_for(settings, policy) as client:
        while True:
            busy = False
            try:
                read = await asyncio.to_thread(
                    derive, engine, identity=identity, settings=settings, base_url=base_url
                )
                sent = await deliver_once(engine, client, settings)
                busy = read > 0 or sent > 0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("TMF notifier round failed; trying again")
            if not busy:
                await asyncio.sleep(settings.poll_seconds)
