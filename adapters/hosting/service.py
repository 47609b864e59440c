"""``HostedAdapter``: hosting participants' accounts in a node's runtime, and the task lifecycle.

Built on an ordinary node (``NodeContext`` and ``NodeRuntime``): every participant of the
adapter's table is hosted in the runtime (``NodeRuntime.host``, one inbox each); participants
created while the adapter runs, from its API or from the CLI in another process, are picked up
by a periodic check. A subclass names its participant table (``participant_model``), installs its
``on_applied`` hook and starts its channel's tasks with ``spawn`` in ``start_channel``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, ClassVar

from sqlmodel import Session

from account.context import Identity, NodeContext
from account.node import NodeRuntime
from adapters.hosting import participants
from adapters.hosting.participants import HostedParticipant

SYNC_SECONDS = 2.0


class HostedAdapter:
    participant_model: ClassVar[type[HostedParticipant]]
    # Short name for logs and task names ("mail", "webhook").
    channel: ClassVar[str]

    def __init__(self, ctx: NodeContext, runtime: NodeRuntime) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.log = logging.getLogger(f"tix.{self.channel}")
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- hosted accounts ----------------------------------------------------------------------

    def load_participants(self, *, host: bool = True) -> list[Identity]:
        """Participants not hosted yet; hosts them too unless ``host`` is False.

        The background check passes ``host=False`` (it runs in a worker thread) and hosts them
        in the event loop, where the runtime reads its identities.
        """
        with Session(self.ctx.engine) as session:
            rows = session.exec(
                participants.of_adapter(self.participant_model, self.ctx.account_id)
            ).all()
        added = []
        for row in rows:
            if row.account_id in self.runtime.identities:
                continue
            try:
                identity = participants.load_identity(self.ctx.settings, row)
            except Exception as exc:
                self.log.error("cannot host %s: %s", row.account_id, exc)
                continue
            if host:
                self.runtime.identities[identity.account_id] = identity
            added.append(identity)
        return added

    def host(self, identity: Identity) -> None:
        """Start consuming for a new participant; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.runtime.host, identity)
        else:  # not started: nothing reads the identities concurrently
            self.runtime.identities[identity.account_id] = identity
        self.on_hosted([identity])

    def on_hosted(self, identities: list[Identity]) -> None:
        """Called once new participants are hosted (the e-mail adapter wakes its sender)."""

    # -- background tasks ---------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.spawn(self._sync(), f"tix-{self.channel}-sync")
        await self.start_channel()

    async def start_channel(self) -> None:
        """Start the channel's own tasks (``spawn``) and servers."""

    async def stop_channel(self) -> None:
        """Close what ``start_channel`` opened besides its tasks (those are cancelled after)."""

    async def stop(self) -> None:
        await self.stop_channel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _sync(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                added = await asyncio.to_thread(self.load_participants, host=False)
            except Exception:
                self.log.exception("participant check failed")
                continue
            for identity in added:
                self.log.info("hosting %s participant %s", self.channel, identity.account_id)
                self.runtime.host(identity)  # in the loop; one reconnect takes them all
            if added:
                self.on_hosted(added)
