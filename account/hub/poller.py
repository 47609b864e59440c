"""Invitations "arrive" without the admin asking: the node asks the hub every few seconds.

Every ``TIX_HUB_POLL_SECONDS`` (0: never) the loop makes one signed ``GET
/hub/v1/invitations/pending`` and keeps only the count and whether the hub answered, in
``ctx.status`` (memory; the hub keeps the tokens). While invitations this node sent are pending,
it also asks what became of them (``GET /hub/v1/invitations/sent``) and records the answers
(``service.sync_sent``: accepted, declined with a reason, expired). The web
UI shows the count next to "Partners"; the partners page fetches the invitations themselves.
A new arrival is logged once. The loop never raises: a hub that is down or refuses (say, this
account is not registered yet) is logged at most once per change of state.
"""

from __future__ import annotations

import asyncio
import logging

from account.context import NodeContext
from account.hub import service
from exchange.hub.client import HubRefused, HubUnavailable

log = logging.getLogger("tix.hub")
STATUS_SENT = "hub_sent"  # ``ctx.status``: whether the last ask for sent invitations' news worked


async def poll_once(ctx: NodeContext) -> int | None:
    """Ask the hub once; the number of waiting invitations, or None when it did not answer."""
    try:
        items = await service.client(ctx, timeout=10.0).pending()
    except (HubRefused, HubUnavailable) as exc:
        if ctx.status.get(service.STATUS_HUB) != "down":
            log.warning("hub: cannot list incoming invitations: %s", exc)
        service.note_pending(ctx, None)
        return None
    before = service.pending_count(ctx)
    if len(items) > before:
        log.info("hub: %d invitation(s) from partners wait for an admin", len(items))
    service.note_pending(ctx, len(items))
    try:
        await service.sync_sent(ctx, hub_timeout=10.0)
    except (HubRefused, HubUnavailable) as exc:
        if ctx.status.get(STATUS_SENT) != "down":  # once per change, like the hub's state
            log.warning("hub: cannot learn what became of sent invitations: %s", exc)
        ctx.status[STATUS_SENT] = "down"
    else:
        ctx.status[STATUS_SENT] = "up"
    return len(items)


async def run(ctx: NodeContext) -> None:
    """Poll until cancelled (returns at once without a hub or with polling off)."""
    every = ctx.settings.hub_poll_seconds
    if not ctx.settings.hub_url or every <= 0:
        return
    while True:
        try:
            await poll_once(ctx)
        except Exception:  # a database error, say: logged, and the next round tries again
            log.exception("hub: polling failed")
        await asyncio.sleep(every)
