"""``tix demo``: a delegation chain of several companies on one machine, end to end.

Every company is a full node (its own database, key pair, HTTP API, inbox consumer and outbox
relay) inside this one process, talking over RabbitMQ when ``TIX_AMQP_URL`` answers, else over
the in-process transport. The demo drives them only through their HTTP APIs, as their
dispatchers would: link, create, delegate down the chain, accept and work at every level,
resolve at the leaf, confirm at the top; then it prints the chain and the time each hop took.

The last level can be a company without a node: whatever the top layer registers with
``register_leaf`` (the ``tix`` command registers the e-mail adapter's participant, whose work
travels as mails over SMTP). ``account`` knows only the ``Participant`` protocol, so it never
imports ``adapters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from account.app import create_app
from account.bootstrap import build_context, build_transport, init_node
from account.config import Settings
from account.context import NodeContext
from account.node import NodeRuntime
from exchange.transport import Transport

COMPANIES = [
    ("acme", "ACME Vendor"),
    ("northwind", "Northwind Services"),
    ("southpole", "Southpole Field Ops"),
    ("eastwood", "Eastwood Electric"),
    ("westgate", "Westgate Cabling"),
    ("lowland", "Lowland Repairs"),
]
PASSWORD = "demo-password"  # noqa: S105  (the demo's throw-away nodes, printed to the user)
WAIT_SECONDS = 30.0

console = Console()


class Participant(Protocol):
    """A company of the chain as the demo drives it (a node, or a company without one)."""

    @property
    def account_id(self) -> str: ...

    @property
    def label(self) -> str: ...

    def accounts(self) -> list[str]:
        """Every account whose broker queues the demo must remove afterwards."""
        ...

    async def join(self, token: str) -> None:
        """Accept the upstream's invitation."""
        ...

    async def wait_offer(self) -> str:
        """Wait for the offer to arrive; return its local ticket number."""
        ...

    async def accept(self, number: str) -> None: ...

    async def work_and_resolve(self, number: str) -> None:
        """Start, comment, resolve (what the leaf does)."""
        ...

    async def confirmed(self, number: str) -> bool:
        """Whether the GC's confirmation has reached this company."""
        ...

    async def stop(self) -> None: ...

    def summary(self) -> str:
        """A line about how this company took part ("" for an ordinary node)."""
        ...


@dataclass(frozen=True)
class LeafSetup:
    """What a registered leaf needs to build itself beside the demo's nodes."""

    label: str
    account: str
    run: str
    workdir: Path
    transport: str
    amqp_url: str
    broker: object | None
    password: str


LeafFactory = Callable[[LeafSetup], Awaitable[Participant]]
_leaf_factory: LeafFactory | None = None


def register_leaf(factory: LeafFactory) -> None:
    """Make the demo's last level a company built by ``factory`` (the top layer decides)."""
    global _leaf_factory
    _leaf_factory = factory


@dataclass
class DemoNode:
    account_id: str
    label: str
    ctx: NodeContext
    runtime: NodeRuntime
    client: httpx.AsyncClient
    port: int = 0

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{self.account_id} {method} {path}: {response.status_code} {response.text}"
            )
        return response.json() if response.content else None

    # -- the demo's ``Participant`` protocol ----------------------------------------------------

    def accounts(self) -> list[str]:
        return [self.account_id]

    async def join(self, token: str) -> None:
        await self.call("POST", "/api/v1/links/accept", json={"token": token})

    async def wait_offer(self) -> str:
        async def offered() -> Any:
            page = await self.call("GET", "/api/v1/tickets", params={"status": "offered"})
            return page["items"][0] if page["items"] else None

        incoming = await _eventually(f"offer at {self.account_id}", offered)
        return str(incoming["number"])

    async def accept(self, number: str) -> None:
        await self.call("POST", f"/api/v1/tickets/{number}/accept")

    async def work_and_resolve(self, number: str) -> None:
        await self.call("POST", f"/api/v1/tickets/{number}/status", json={"status": "in_progress"})
        await self.call(
            "POST",
            f"/api/v1/tickets/{number}/comments",
            json={"body": "Engineer on site, replacing the card reader.", "visibility": "partner"},
        )
        await self.call(
            "POST",
            f"/api/v1/tickets/{number}/status",
            json={"status": "resolved", "note": "Card reader replaced, tested OK."},
        )

    async def confirmed(self, number: str) -> bool:
        ticket = await self.call("GET", f"/api/v1/tickets/{number}")
        return bool(ticket["status"] == "closed")

    async def stop(self) -> None:
        await self.runtime.stop()
        await self.client.aclose()

    def summary(self) -> str:
        return ""


async def _amqp_answers(url: str) -> bool:
    from exchange.amqp import AmqpTransport

    transport = AmqpTransport(url)
    try:
        await asyncio.wait_for(transport.connect(), timeout=3)
    except Exception:
        return False
    await transport.close()
    return True


async def _eventually(what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


async def _login(node: DemoNode) -> None:
    response = await node.client.post(
        "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
    )
    response.raise_for_status()
    node.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


async def run_demo(*, levels: int = 4, serve: bool = False, transport: str = "auto") -> int:
    settings0 = Settings()
    kind = transport
    if kind == "auto":
        kind = "amqp" if await _amqp_answers(settings0.amqp_url) else "inprocess"
    if kind == "amqp":
        console.print(f"transport: [bold]RabbitMQ[/] at {settings0.amqp_url.split('@')[-1]}")
    else:
        console.print("transport: [bold]in-process[/] (RabbitMQ did not answer at TIX_AMQP_URL)")
    broker: object | None = None
    if kind == "inprocess":
        from exchange.inprocess import InProcessBroker

        broker = InProcessBroker()
    run = secrets.token_hex(2)
    workdir = Path(tempfile.mkdtemp(prefix="tix-demo-"))
    nodes: list[DemoNode] = []
    leaf: Participant | None = None
    transports: list[Transport] = []
    node_companies = COMPANIES[: levels - 1] if _leaf_factory else COMPANIES[:levels]
    try:
        for account, label in node_companies:
            settings = Settings(
                account_id=f"{account}-{run}",
                display_name=label,
                data_dir=workdir / account,
                database_url="",
                transport=kind,
                amqp_url=settings0.amqp_url,
                relay_poll_seconds=0.2,
            )
            init_node(settings, admin="admin", password=PASSWORD)
            ctx = build_context(settings)
            tr = build_transport(settings, broker)
            transports.append(tr)
            runtime = NodeRuntime(ctx, tr)
            app = create_app(ctx, runtime)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{account}.demo"
            )
            node = DemoNode(settings.account_id, label, ctx, runtime, client)
            await runtime.start()
            await _login(node)
            nodes.append(node)
        if _leaf_factory is not None:
            account, label = COMPANIES[levels - 1]
            leaf = await _leaf_factory(
                LeafSetup(
                    label=label,
                    account=account,
                    run=run,
                    workdir=workdir,
                    transport=kind,
                    amqp_url=settings0.amqp_url,
                    broker=broker,
                    password=PASSWORD,
                )
            )
        await _eventually(
            "brokers", lambda: _all(n.ctx.status.get("broker") == "up" for n in nodes)
        )
        chain: list[Participant] = [*nodes, *([leaf] if leaf else [])]
        return await _play(nodes, chain, serve=serve, workdir=workdir)
    finally:
        everyone: list[Participant] = [*nodes, *([leaf] if leaf else [])]
        for company in everyone:
            await company.stop()
        if kind == "amqp":
            await _cleanup_queues(
                settings0.amqp_url, [a for company in everyone for a in company.accounts()]
            )


async def _all(values: Any) -> bool:
    return all(values)


async def _cleanup_queues(url: str, accounts: list[str]) -> None:
    from exchange.amqp import AmqpTransport

    transport = AmqpTransport(url)
    with contextlib.suppress(Exception):
        await transport.connect()
        for account in accounts:
            await transport.delete_inbox(account)
    await transport.close()


async def _play(
    nodes: list[DemoNode], chain: list[Participant], *, serve: bool, workdir: Path
) -> int:
    """Run the story; ``nodes`` are the companies with nodes, ``chain`` all of them in order."""
    started = time.monotonic()
    stamps: dict[str, float] = {}

    with console.status("linking the companies…"):
        for level, (up, down) in enumerate(zip(nodes, chain[1:], strict=False), start=1):
            contract = {"disclose_subcontractors": "named", "sla": _demo_sla(level)}
            invite = await up.call("POST", "/api/v1/links/invitations", json={"contract": contract})
            await down.join(invite["token"])

            async def linked(up: DemoNode = up, down: Participant = down) -> bool:
                links = await up.call("GET", "/api/v1/links")
                return any(link["partner"] == down.account_id for link in links["items"])

            await _eventually(f"link {up.account_id} → {down.account_id}", linked)
    console.print(f"linked {len(chain)} companies in a chain")

    gc = nodes[0]
    ticket = await gc.call(
        "POST",
        "/api/v1/tickets",
        json={
            "title": "ATM 0417 out of service",
            "description": "Card reader fault reported by the branch.",
            "priority": "high",
            "category": "hardware",
            "service_object": {
                "site": "Branch 12",
                "address": "1 Main St",
                "equipment": "ATM 0417",
            },
            "requester": {"name": "Branch manager", "email": "branch12@client.example"},
        },
    )
    numbers = [ticket["number"]]
    stamps["created"] = time.monotonic()

    with console.status("delegating down the chain…"):
        for level, (up, down) in enumerate(zip(nodes, chain[1:], strict=False), start=1):
            await up.call(
                "POST",
                f"/api/v1/tickets/{numbers[-1]}/delegations",
                json={"partner": down.account_id, "note": f"please handle (level {level})"},
            )
            stamps[f"offer{level}"] = time.monotonic()
            incoming = await down.wait_offer()
            stamps[f"arrived{level}"] = time.monotonic()
            await down.accept(incoming)
            numbers.append(incoming)

    leaf = chain[-1]
    with console.status("working and resolving at the leaf…"):
        await leaf.work_and_resolve(numbers[-1])
        stamps["leaf_resolved"] = time.monotonic()

    with console.status("resolution travelling up…"):
        for i in range(len(chain) - 2, -1, -1):
            node, number = nodes[i], numbers[i]

            async def resolved_below(node: DemoNode = node, number: str = number) -> bool:
                t = await node.call("GET", f"/api/v1/tickets/{number}")
                return any(d["state"] == "resolved" for d in t["delegations"])

            await _eventually(f"resolution at {node.account_id}", resolved_below)
            if i > 0:
                await node.call(
                    "POST",
                    f"/api/v1/tickets/{number}/status",
                    json={"status": "resolved", "note": "Resolved by our subcontractor."},
                )
        stamps["gc_saw_resolved"] = time.monotonic()

    with console.status("confirming from the top…"):
        top = (await gc.call("GET", f"/api/v1/tickets/{numbers[0]}"))["delegations"][0]
        await gc.call("POST", f"/api/v1/delegations/{top['id']}/confirm", json={})
        for below, below_number in zip(chain[1:], numbers[1:], strict=True):

            async def closed(below: Participant = below, below_number: str = below_number) -> bool:
                return await below.confirmed(below_number)

            await _eventually(f"confirmation at {below.account_id}", closed)
        await gc.call("POST", f"/api/v1/tickets/{numbers[0]}/status", json={"status": "resolved"})
        await gc.call("POST", f"/api/v1/tickets/{numbers[0]}/status", json={"status": "closed"})
        stamps["confirmed"] = time.monotonic()

    async def settled() -> Any:
        tree = await gc.call("GET", f"/api/v1/tickets/{numbers[0]}/chain")
        statuses: list[str] = []
        stack = list(tree["delegations"])
        while stack:
            node = stack.pop()
            statuses.append(node["status"])
            stack.extend(node["delegations"])
        return tree if len(statuses) == len(chain) - 1 and set(statuses) == {"closed"} else None

    with console.status("waiting for the last roll-ups…"):
        tree = await _eventually("the chain to settle at the GC", settled)
    _print_chain(tree, nodes)
    for company in chain:
        if line := company.summary():
            console.print(line)
    _print_timings(stamps, chain, started)
    if serve:
        await _serve(nodes, workdir)
    return 0


def _demo_sla(level: int) -> dict[str, Any]:
    """Each level's contract gives less time than the one above it (no squeeze), 24x7 clocks."""
    response, resolution = 60 // level, 480 // level
    targets = {"response_minutes": response, "resolution_minutes": resolution}
    return {"targets": {p: targets for p in ("critical", "high", "normal", "low")}}


def _print_chain(chain: dict[str, Any], nodes: list[DemoNode]) -> None:
    head = chain["ticket"]
    tree = Tree(f"[bold]{head['number']}[/] at {nodes[0].label} — {head['status']} (level 0)")

    def add(branch: Tree, items: list[dict[str, Any]]) -> None:
        for d in items:
            who = d["partner_label"] or d["partner"] or "undisclosed"
            due = (d.get("due") or {}).get("resolve_by") or "-"
            sub = branch.add(
                f"level {d['level']}: [bold]{who}[/] — delegation {d['state']}, "
                f"ticket {d['status']} (accepted {d['accepted_at'] or '-'}, "
                f"resolved {d['resolved_at'] or '-'}; SLA {d['sla']['state']}, "
                f"resolve by {due})"
            )
            add(sub, d["delegations"])

    add(tree, chain["delegations"])
    console.print(tree)


def _print_timings(stamps: dict[str, float], nodes: list[Participant], started: float) -> None:
    table = Table(title="time each hop took")
    table.add_column("hop")
    table.add_column("ms", justify="right")
    for level in range(1, len(nodes)):
        up, down = nodes[level - 1], nodes[level]
        ms = (stamps[f"arrived{level}"] - stamps[f"offer{level}"]) * 1000
        table.add_row(f"offer {up.account_id} → {down.account_id}", f"{ms:.1f}")
    table.add_row(
        "leaf resolved → GC sees it",
        f"{(stamps['gc_saw_resolved'] - stamps['leaf_resolved']) * 1000:.1f}",
    )
    table.add_row(
        "whole chain, created → confirmed",
        f"{(stamps['confirmed'] - stamps['created']) * 1000:.1f}",
    )
    table.add_row("demo total (incl. set-up)", f"{(time.monotonic() - started) * 1000:.1f}")
    console.print(table)


async def _serve(nodes: list[DemoNode], workdir: Path) -> None:
    import uvicorn

    servers = []
    for i, node in enumerate(nodes):
        port = 8100 + i
        config = uvicorn.Config(
            create_app(node.ctx), host="127.0.0.1", port=port, log_level="warning"
        )
        servers.append(uvicorn.Server(config))
        console.print(f"{node.label}: http://127.0.0.1:{port}/docs  (admin / {PASSWORD})")
    console.print(f"data in {workdir}; Ctrl-C stops")
    await asyncio.gather(*(server.serve() for server in servers))
