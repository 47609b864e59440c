"""Tix's side of ``tix bench``: tickets down a four-level chain of node processes and back.

Nodes L0 → L1 → L2 → L3 are separate ``tix node serve`` processes on one broker, linked with
``auto_accept`` contracts, so every offer is accepted by the receiving node itself in the
transaction that applies it. The driver plays each company's dispatcher over HTTP:

* L0 creates N tickets and delegates each to L1 (at most ``concurrency`` requests in flight,
  and at most ``rate`` tickets per second when given);
* L1 and L2 delegate each ticket they accepted to the next level, and resolve their own ticket
  once their delegation below reports ``resolved``;
* L3 (the leaf) resolves each ticket it accepted;
* L0 confirms each delegation that reports ``resolved``; the confirmation cascades down.

The run ends when the leaf has every ticket ``closed`` (the confirmation arrived at the bottom).
Every loop is bounded by ``within`` seconds; polling uses the list endpoint (open and in progress).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from account.bench.procs import Node

PAGE = 200
POLL = 0.1
ATTEMPTS = 3

Advance = Callable[[str, int], None]


@dataclass
class DriveResult:
    tickets: int
    seconds: float
    started_wall: float  # time.time() of the first request
    finished_wall: float
    http_requests: int = 0
    stages: dict[str, int] = field(default_factory=dict)


class _Api:
    """An authenticated async client for one node that counts its requests."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.client = httpx.AsyncClient(
            base_url=node.base_url,
            timeout=30.0,
            headers={"Authorization": f"Bearer {node.token}"},
            limits=httpx.Limits(max_connections=16),
        )
        self.requests = 0

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        """One request; a dropped connection is retried (up to ``ATTEMPTS`` times), and on a
        retry 409 counts as done (the first attempt may have gone through)."""
        for attempt in range(ATTEMPTS):
            self.requests += 1
            try:
                response = await self.client.request(method, path, **kw)
            except httpx.TransportError:
                if attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if attempt and response.status_code == 409:
                return None
            break
        if response.status_code >= 400:
            raise RuntimeError(
                f"{self.node.account_id} {method} {path} → {response.status_code} {response.text}"
            )
        return response.json() if response.content else None

    async def open_tickets(self, bound: int) -> list[dict[str, Any]]:
        """Every ``open`` or ``in_progress`` ticket (pages of 200, at most ``bound`` items)."""
        items: list[dict[str, Any]] = []
        offset = 0
        while offset < bound:
            page = await self.call(
                "GET",
                "/api/v1/tickets",
                params={"status": ["open", "in_progress"], "limit": PAGE, "offset": offset},
            )
            items.extend(page["items"])
            offset += PAGE
            if offset >= int(page["total"]):
                break
        return items


async def link(upstream: Node, downstream: Node, contract: dict[str, Any], within: float) -> None:
    """Invite on ``upstream``, accept on ``downstream``, wait until the upstream has the link."""
    up, down = _Api(upstream), _Api(downstream)
    try:
        invite = await up.call("POST", "/api/v1/links/invitations", json={"contract": contract})
        await down.call("POST", "/api/v1/links/accept", json={"token": invite["token"]})
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            links = (await up.call("GET", "/api/v1/links"))["items"]
            if any(item["partner"] == downstream.account_id for item in links):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"link {upstream.account_id} → {downstream.account_id} not up")
    finally:
        await up.client.aclose()
        await down.client.aclose()


async def drive(
    chain: list[Node],
    *,
    tickets: int,
    rate: float,
    concurrency: int,
    within: float,
    advance: Advance,
) -> DriveResult:
    """Run ``tickets`` tickets down ``chain`` and back; ``TimeoutError`` after ``within`` s."""
    apis = [_Api(node) for node in chain]
    leaf = len(chain) - 1
    slots = asyncio.Semaphore(concurrency)
    done_at_leaf = asyncio.Event()
    handled: list[set[str]] = [set() for _ in chain]  # delegated (or resolved at the leaf)
    finished: list[set[str]] = [set() for _ in chain]  # resolved (L1, L2) or confirmed (L0)
    counts = {"created": 0, "leaf_resolved": 0, "confirmed": 0, "closed_at_leaf": 0}

    async def act(coro: Any) -> None:
        async with slots:
            await coro

    async def feed() -> None:
        start = time.monotonic()

        async def one(i: int) -> None:
            ticket = await apis[0].call("POST", "/api/v1/tickets", json={"title": f"Bench {i}"})
            handled[0].add(ticket["number"])
            await apis[0].call(
                "POST",
                f"/api/v1/tickets/{ticket['number']}/delegations",
                json={"partner": chain[1].account_id},
            )
            counts["created"] += 1
            advance("created", 1)

        running: set[asyncio.Task[None]] = set()
        for i in range(tickets):
            if rate > 0:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await slots.acquire()
            task = asyncio.create_task(one(i))
            task.add_done_callback(lambda _t: slots.release())
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)

    async def level(k: int) -> None:
        api = apis[k]
        while not done_at_leaf.is_set():
            jobs = []
            for item in await api.open_tickets(bound=2 * tickets + PAGE):
                number = item["number"]
                delegations = item.get("delegations") or []
                if k == leaf:
                    if number not in handled[k]:
                        handled[k].add(number)
                        jobs.append(_resolve(api, number, counts, advance))
                elif k > 0 and not delegations and number not in handled[k]:
                    handled[k].add(number)
                    jobs.append(
                        api.call(
                            "POST",
                            f"/api/v1/tickets/{number}/delegations",
                            json={"partner": chain[k + 1].account_id},
                        )
                    )
                elif delegations and delegations[0]["state"] == "resolved":
                    if number in finished[k]:
                        continue
                    finished[k].add(number)
                    if k == 0:
                        jobs.append(_confirm(api, delegations[0]["id"], counts, advance))
                    else:
                        jobs.append(
                            api.call(
                                "POST",
                                f"/api/v1/tickets/{number}/status",
                                json={"status": "resolved"},
                            )
                        )
            if jobs:
                await asyncio.gather(*(act(job) for job in jobs))
            if k == leaf and len(handled[k]) >= tickets:
                closed = await api.call(
                    "GET", "/api/v1/tickets", params={"status": "closed", "limit": 1}
                )
                seen = int(closed["total"])
                if seen > counts["closed_at_leaf"]:
                    advance("closed_at_leaf", seen - counts["closed_at_leaf"])
                    counts["closed_at_leaf"] = seen
                if seen >= tickets:
                    done_at_leaf.set()
                    return
            if not jobs:
                await asyncio.sleep(POLL)

    started_wall = time.time()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            await asyncio.gather(feed(), *(level(k) for k in range(len(chain))))
    finally:
        for api in apis:
            await api.client.aclose()
    seconds = time.perf_counter() - started
    return DriveResult(
        tickets=tickets,
        seconds=seconds,
        started_wall=started_wall,
        finished_wall=time.time(),
        http_requests=sum(api.requests for api in apis),
        stages=dict(counts),
    )


async def _resolve(api: _Api, number: str, counts: dict[str, int], advance: Advance) -> None:
    await api.call("POST", f"/api/v1/tickets/{number}/status", json={"status": "resolved"})
    counts["leaf_resolved"] += 1
    advance("leaf_resolved", 1)


async def _confirm(api: _Api, delegation_id: str, counts: dict[str, int], advance: Advance) -> None:
    await api.call("POST", f"/api/v1/delegations/{delegation_id}/confirm")
    counts["confirmed"] += 1
    advance("confirmed", 1)
