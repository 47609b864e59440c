"""Many concurrent API requests on one node all get answers (no thread-pool deadlock).

Before ``account.http_limit``: 50 concurrent requests filled AnyIO's 40 worker threads with
requests waiting for the single SQLite connection, while the request holding it waited for a
thread to validate its response; everything stood still until the pool timeout and failed.
On PostgreSQL the pool is larger (10 + 10 overflow) but still smaller than 100 requests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.http_limit import ConcurrencyLimit
from account.tickets import service as ticket_service
from account.tickets.models import TicketCreate
from account.users import service as user_service
from exchange.signing import generate_key
from tests.support.db import node_engine


async def test_a_hundred_concurrent_requests_on_the_nodes_connection_pool_all_succeed(
    tmp_path: Path, db_backend: str
) -> None:
    with node_engine(db_backend, tmp_path) as engine:
        await _a_hundred_requests(engine, tmp_path)


async def _a_hundred_requests(engine: Engine, tmp_path: Path) -> None:
    pool: Any = engine.pool
    pool._timeout = 10  # a deadlock fails in 10 s instead of 60
    with session_scope(engine) as session:
        admin = user_service.ensure_admin(session=session, username="root", password="root-pw-123")
        for i in range(20):
            ticket_service.create(
                session=session,
                account_id="acme",
                ticket_in=TicketCreate(title=f"Ticket {i}"),
                actor=admin,
            )
    ctx = NodeContext(
        settings=Settings(account_id="acme", data_dir=tmp_path),
        engine=engine,
        identity=Identity(account_id="acme", label="ACME", key=generate_key()),
        secret=b"s" * 48,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://acme.test", timeout=60
    ) as http:
        token = (
            await http.post(
                "/api/v1/auth/token", data={"username": "root", "password": "root-pw-123"}
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        responses = await asyncio.gather(
            *(http.get("/api/v1/tickets", headers=headers) for _ in range(100))
        )
    assert [r.status_code for r in responses] == [200] * 100
    assert {r.json()["total"] for r in responses} == {20}


async def test_the_limit_lets_that_many_requests_in_at_once() -> None:
    inside = 0
    most = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.01)
        inside -= 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=ConcurrencyLimit(app, limit=3))
    async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as http:
        responses = await asyncio.gather(*(http.get("/") for _ in range(20)))
    assert [r.status_code for r in responses] == [204] * 20
    assert most == 3
