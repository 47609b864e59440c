"""The ticket API of one node in-process (no broker), on SQLite and PostgreSQL.

Covers what a help-desk user expects of their own tickets: create, list with filters, get,
patch, the status state machine (409 for a move it forbids), comments with visibility, the
timeline, validation errors as 422 JSON, and a contact seeing only their organisation's tickets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.tickets.models import Ticket
from account.users import service as user_service
from account.users.models import UserCreate
from exchange.signing import generate_key
from tests.support.db import clear_tables

ADMIN = ("root", "root-password-1")


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    settings = Settings(account_id="acme", data_dir=tmp_path)
    identity = Identity(account_id="acme", label="ACME", key=generate_key())
    with session_scope(engine) as session:
        user_service.ensure_admin(session=session, username=ADMIN[0], password=ADMIN[1])
        for name, role, org in (
            ("disp", "dispatcher", None),
            ("eng", "engineer", None),
            ("alice", "contact", "Bank North"),
            ("bob", "contact", "Bank South"),
        ):
            user_service.create(
                session=session,
                user_in=UserCreate(
                    username=name, password="password-123", role=role, organisation=org
                ),
            )
    yield NodeContext(settings=settings, engine=engine, identity=identity, secret=b"s" * 48)
    clear_tables(engine)


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as http:
        yield http


async def as_user(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    password = ADMIN[1] if username == ADMIN[0] else "password-123"
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> Any:
    response = await client.post("/api/v1/tickets", json={"title": "t"} | fields, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_dispatcher_creates_lists_filters_and_patches_tickets(
    client: httpx.AsyncClient,
) -> None:
    disp = await as_user(client, "disp")
    first = await create(
        client,
        disp,
        title="Broken ATM",
        priority="critical",
        service_object={"site": "Branch 1", "equipment": "ATM"},
    )
    assert first["number"] == f"ACME-{first['number'].split('-')[1]}"
    assert first["status"] == "new" and first["depth"] == 0 and first["upstream"] is None
    await create(client, disp, title="Printer 100%_done")

    page = (await client.get("/api/v1/tickets", headers=disp)).json()
    assert page["total"] == 2
    assert page["items"][0]["title"] == "Printer 100%_done", "newest first"
    found = (await client.get("/api/v1/tickets", params={"q": "atm"}, headers=disp)).json()
    assert [t["number"] for t in found["items"]] == [first["number"]]
    literal = (await client.get("/api/v1/tickets", params={"q": "100%_"}, headers=disp)).json()
    assert literal["total"] == 1, "LIKE wildcards in q are matched literally"
    limited = (await client.get("/api/v1/tickets", params={"limit": 1}, headers=disp)).json()
    assert limited["total"] == 2 and len(limited["items"]) == 1

    patched = await client.patch(
        f"/api/v1/tickets/{first['number']}", json={"priority": "low"}, headers=disp
    )
    assert patched.status_code == 200 and patched.json()["priority"] == "low"
    bad = await client.patch(
        f"/api/v1/tickets/{first['number']}", json={"status": "closed"}, headers=disp
    )
    assert bad.status_code == 422, "status changes go through /status, not PATCH"
    assert (await client.get("/api/v1/tickets/ACME-999999", headers=disp)).status_code == 404


async def test_status_follows_the_state_machine_and_forbidden_moves_are_409(
    client: httpx.AsyncClient,
) -> None:
    eng = await as_user(client, "eng")
    number = (await create(client, eng))["number"]

    async def move(status: str) -> httpx.Response:
        return await client.post(
            f"/api/v1/tickets/{number}/status", json={"status": status}, headers=eng
        )

    assert (await move("in_progress")).json()["status"] == "in_progress"
    assert (await move("on_hold")).status_code == 200
    assert (await move("in_progress")).status_code == 200
    resolved = await move("resolved")
    assert resolved.json()["resolved_at"] is not None
    refused = await move("new")
    assert refused.status_code == 409 and "resolved" in refused.json()["detail"]
    assert (await move("offered")).status_code == 409
    assert (await move("reopened")).status_code == 200
    assert (await move("bogus")).status_code == 422
    kinds = [
        (e["detail"]["from"], e["detail"]["to"])
        for e in (await client.get(f"/api/v1/tickets/{number}/timeline", headers=eng)).json()[
            "items"
        ]
        if e["kind"] == "status"
    ]
    assert kinds == [
        ("new", "in_progress"),
        ("in_progress", "on_hold"),
        ("on_hold", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "reopened"),
    ]


async def test_a_contact_sees_only_their_organisations_tickets_and_public_comments(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    disp = await as_user(client, "disp")
    north = await create(client, disp, title="North ATM", organisation="Bank North")
    south = await create(client, disp, title="South ATM", organisation="Bank South")
    for visibility in ("public", "partner", "internal"):
        response = await client.post(
            f"/api/v1/tickets/{north['number']}/comments",
            json={"body": f"{visibility} note", "visibility": visibility},
            headers=disp,
        )
        assert response.status_code == 201

    alice = await as_user(client, "alice")
    mine = (await client.get("/api/v1/tickets", headers=alice)).json()
    assert [t["number"] for t in mine["items"]] == [north["number"]] and mine["total"] == 1
    assert (
        await client.get(f"/api/v1/tickets/{south['number']}", headers=alice)
    ).status_code == 404
    for path in ("", "/comments"):
        response = await client.get(f"/api/v1/tickets/{south['number']}{path}", headers=alice)
        assert response.status_code == 404, path
    comments = (
        await client.get(f"/api/v1/tickets/{north['number']}/comments", headers=alice)
    ).json()
    assert [c["body"] for c in comments["items"]] == ["public note"]
    assert (
        await client.get(f"/api/v1/tickets/{north['number']}/timeline", headers=alice)
    ).status_code == 403
    assert (
        await client.post(
            f"/api/v1/tickets/{north['number']}/status", json={"status": "resolved"}, headers=alice
        )
    ).status_code == 403
    internal = await client.post(
        f"/api/v1/tickets/{north['number']}/comments",
        json={"body": "sneaky", "visibility": "internal"},
        headers=alice,
    )
    assert internal.status_code == 403

    # A contact's new ticket belongs to their own organisation, whatever they claim.
    claimed = await create(client, alice, title="Mine", organisation="Bank South")
    assert claimed["organisation"] == "Bank North"
    bob = await as_user(client, "bob")
    assert (
        await client.get(f"/api/v1/tickets/{claimed['number']}", headers=bob)
    ).status_code == 404
    with Session(ctx.engine) as session:
        orgs = {t.number: t.organisation for t in session.exec(select(Ticket)).all()}
    assert orgs[claimed["number"]] == "Bank North"


async def test_bad_input_is_a_json_4xx_and_changes_nothing(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    disp = await as_user(client, "disp")
    cases = [
        {"title": ""},
        {"title": "x" * 501},
        {"title": "ok", "priority": "urgent"},
        {"title": "ok", "unknown": 1},
        {"title": "ok", "service_object": {"site": 5}},
    ]
    for body in cases:
        response = await client.post("/api/v1/tickets", json=body, headers=disp)
        assert response.status_code == 422, body
        assert "detail" in response.json()
    raw = await client.post(
        "/api/v1/tickets", content=b"{not json", headers=disp | {"content-type": "application/json"}
    )
    assert raw.status_code == 422
    injection = "'; DROP TABLE ticket; --"
    made = await create(client, disp, title=injection, description="<script>alert(1)</script>")
    assert made["title"] == injection
    assert (await client.get("/api/v1/tickets", headers=disp)).json()["total"] == 1
    assert (await client.get("/api/v1/tickets")).status_code == 401
    delegated = await client.post(
        f"/api/v1/tickets/{made['number']}/delegations", json={"partner": "nobody"}, headers=disp
    )
    assert delegated.status_code == 404 and delegated.json()["detail"] == "no link to nobody"
