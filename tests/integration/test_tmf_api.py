"""The TMF621 facade of one node in-process, on SQLite and PostgreSQL.

Covers create / retrieve / list / merge-patch of trouble tickets and hub subscriptions, with
every response checked against the v5.0.1 specification's schemas; bad input answered with a
TMF ``Error`` (4xx) and nothing changed; contacts seeing only their organisation's tickets and
public notes; and event delivery to a real listener on loopback, including the listener being
down for a while.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.tickets.models import Comment, Ticket, TicketEvent
from account.tmf import notifier
from account.tmf.config import TmfSettings
from account.tmf.models import TmfCursor, TmfHub, TmfNotification
from account.users import service as user_service
from account.users.models import UserCreate
from exchange.egress import parse_allow
from exchange.signing import generate_key
from tests.support.db import clear_tables
from tests.support.tmf import listener, schema_errors

BASE = "/tmf-api/troubleTicket/v5"
ADMIN = ("root", "root-password-1")
FAST = TmfSettings(retry_initial_seconds=0.01, retry_max_seconds=0.02, poll_seconds=0.01)
LOOPBACK = parse_allow("127.0.0.0/8")  # the listeners run on loopback, allowed only when listed


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    settings = Settings(account_id="acme", data_dir=tmp_path)
    identity = Identity(account_id="acme", label="ACME Vendor", key=generate_key())
    with session_scope(engine) as session:
        user_service.ensure_admin(session=session, username=ADMIN[0], password=ADMIN[1])
        for name, role, org in (
            ("disp", "dispatcher", None),
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


def conforms(name: str, doc: Any) -> Any:
    errors = schema_errors(name, doc)
    assert errors == [], errors
    return doc


def error_of(response: httpx.Response, code: int) -> str:
    assert response.status_code == code, response.text
    body = response.json()
    conforms("Error", body)
    assert body["code"] == str(code) and body["detail"] == body["message"]
    return str(body["message"])


NEW_TICKET: dict[str, Any] = {
    "@type": "TroubleTicket",
    "name": "Cooling failure",
    "description": "Room 4 is at 31 °C",
    "severity": "Major",
    "ticketType": "hvac",
    "externalIdentifier": [{"@type": "ExternalIdentifier", "owner": "OpCo CRM", "id": "INC-77"}],
    "note": [{"@type": "Note", "text": "Please call before arriving"}],
    "relatedParty": [
        {
            "@type": "RelatedPartyRefOrPartyRoleRef",
            "role": "customer",
            "partyOrPartyRole": {"@type": "PartyRef", "id": "bn", "name": "Bank North"},
        }
    ],
    "requestedResolutionDate": "2026-12-24T10:00:00Z",
}


def counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        tickets = session.exec(select(func.count()).select_from(Ticket)).one()
        comments = session.exec(select(func.count()).select_from(Comment)).one()
    return int(tickets), int(comments)


async def test_create_retrieve_list_and_patch_conform_to_the_specification(
    client: httpx.AsyncClient,
) -> None:
    disp = await as_user(client, "disp")
    response = await client.post(f"{BASE}/troubleTicket", json=NEW_TICKET, headers=disp)
    assert response.status_code == 201, response.text
    created = conforms("TroubleTicket_RES", response.json())
    number = created["id"]
    assert created["href"] == f"http://acme.test{BASE}/troubleTicket/{number}"
    assert (created["status"], created["priority"], created["severity"]) == (
        "acknowledged",
        "High",
        "Major",
    )
    assert created["ticketType"] == "hvac" and created["name"] == "Cooling failure"
    assert created["requestedResolutionDate"] == "2026-12-24T10:00:00.000Z"
    assert [n["text"] for n in created["note"]] == ["Please call before arriving"]
    ids = [(e["owner"], e["id"]) for e in created["externalIdentifier"]]
    assert ids[0] == ("OpCo CRM", "INC-77") and ids[-1][0] == "tix"
    roles = {p["role"]: p["partyOrPartyRole"]["name"] for p in created["relatedParty"]}
    assert roles == {"serviceProvider": "ACME Vendor", "customer": "Bank North"}

    # The Tix API sees the same ticket.
    tix = (await client.get(f"/api/v1/tickets/{number}", headers=disp)).json()
    assert (tix["title"], tix["priority"], tix["category"]) == ("Cooling failure", "high", "hvac")
    assert tix["organisation"] == "Bank North"

    got = await client.get(f"{BASE}/troubleTicket/{number}", headers=disp)
    assert conforms("TroubleTicket_RES", got.json()) == created

    some = await client.get(
        f"{BASE}/troubleTicket/{number}", params={"fields": "name,status"}, headers=disp
    )
    assert set(some.json()) == {"@type", "id", "href", "name", "status"}

    # A second ticket, then list with attribute selection, filters and paging.
    second = dict(NEW_TICKET, name="Door sensor", severity="Minor", priority="Low")
    assert (
        await client.post(f"{BASE}/troubleTicket", json=second, headers=disp)
    ).status_code == 201
    listed = await client.get(f"{BASE}/troubleTicket", params={"limit": 1}, headers=disp)
    assert listed.status_code == 200
    assert listed.headers["X-Total-Count"] == "2" and listed.headers["X-Result-Count"] == "1"
    assert [t["name"] for t in conforms("TroubleTicket_RES", listed.json()[0]) and listed.json()]
    page2 = await client.get(
        f"{BASE}/troubleTicket", params={"limit": 1, "offset": 1, "fields": "name"}, headers=disp
    )
    assert [t["name"] for t in page2.json()] == ["Cooling failure"]
    low = await client.get(f"{BASE}/troubleTicket", params={"priority": "Low"}, headers=disp)
    assert [t["name"] for t in low.json()] == ["Door sensor"]
    minor = await client.get(f"{BASE}/troubleTicket", params={"severity": "Minor"}, headers=disp)
    assert [t["name"] for t in minor.json()] == ["Door sensor"]

    # Merge patch: fields, a note appended, the status moved with a reason.
    patch = {
        "name": "Cooling failure, room 4",
        "priority": "Critical",
        "status": "inProgress",
        "statusChangeReason": "engineer on the way",
        "note": [*created["note"], {"text": "Arrived at 10:05"}],
    }
    response = await client.patch(
        f"{BASE}/troubleTicket/{number}",
        json=patch,
        headers=disp | {"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    patched = conforms("TroubleTicket_RES", response.json())
    assert (patched["name"], patched["priority"], patched["status"]) == (
        "Cooling failure, room 4",
        "Critical",
        "inProgress",
    )
    assert patched["statusChangeReason"] == "engineer on the way"
    assert [n["text"] for n in patched["note"]] == [
        "Please call before arriving",
        "Arrived at 10:05",
    ]
    # Sending back the identifiers as read does not duplicate the chain's own.
    echoed = await client.patch(
        f"{BASE}/troubleTicket/{number}",
        json={"externalIdentifier": patched["externalIdentifier"]},
        headers=disp,
    )
    assert echoed.json()["externalIdentifier"] == patched["externalIdentifier"]
    in_progress = await client.get(
        f"{BASE}/troubleTicket", params={"status": "inProgress"}, headers=disp
    )
    assert [t["id"] for t in in_progress.json()] == [number]

    response = await client.patch(
        f"{BASE}/troubleTicket/{number}",
        json={"status": "resolved", "statusChangeReason": "compressor replaced"},
        headers=disp,
    )
    resolved = conforms("TroubleTicket_RES", response.json())
    assert resolved["status"] == "resolved" and "resolutionDate" in resolved
    tix = (await client.get(f"/api/v1/tickets/{number}", headers=disp)).json()
    assert (tix["status"], tix["resolution"]) == ("resolved", "compressor replaced")


async def test_bad_input_is_a_tmf_error_and_changes_nothing(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    disp = await as_user(client, "disp")
    alice = await as_user(client, "alice")
    error_of(await client.get(f"{BASE}/troubleTicket"), 401)
    error_of(
        await client.get(f"{BASE}/troubleTicket", headers={"Authorization": "Bearer nope"}), 401
    )
    created = (await client.post(f"{BASE}/troubleTicket", json=NEW_TICKET, headers=disp)).json()
    number = created["id"]
    before = counts(ctx.engine)

    bad_creates: list[Any] = [
        {k: v for k, v in NEW_TICKET.items() if k != "description"},
        NEW_TICKET | {"severity": "Apocalyptic"},
        NEW_TICKET | {"priority": "urgent!"},
        NEW_TICKET | {"attachment": [{"@type": "Attachment", "url": "http://x"}]},
        NEW_TICKET | {"status": "resolved"},
        NEW_TICKET | {"relatedParty": [{"role": "owner", "partyOrPartyRole": {"id": "x"}}]},
        NEW_TICKET | {"name": "x" * 501},
        [NEW_TICKET],
    ]
    for body in bad_creates:
        error_of(await client.post(f"{BASE}/troubleTicket", json=body, headers=disp), 400)
    error_of(
        await client.post(
            f"{BASE}/troubleTicket",
            content=b'{"description": ',
            headers=disp | {"Content-Type": "application/json"},
        ),
        400,
    )

    url = f"{BASE}/troubleTicket/{number}"
    # Every patch below is refused as a whole: the name change in it does not stick either.
    for body, code in (
        ({"name": "renamed", "status": "rejected"}, 400),
        ({"name": "renamed", "status": "closed"}, 409),  # acknowledged → closed is no move
        ({"name": None}, 400),
        ({"name": "renamed", "unknownField": 1}, 400),
        ({"statusChangeReason": "why not"}, 400),
        ({"name": "renamed", "priority": "asap"}, 400),
    ):
        error_of(await client.patch(url, json=body, headers=disp), code)
    error_of(
        await client.patch(
            url,
            json=[{"op": "replace", "path": "/name", "value": "renamed"}],
            headers=disp | {"Content-Type": "application/json-patch+json"},
        ),
        400,
    )
    error_of(await client.patch(url, json={"name": "renamed"}, headers=alice), 403)
    error_of(await client.patch(url, json={"status": "cancelled"}, headers=alice), 403)
    error_of(await client.get(f"{BASE}/troubleTicket/NOPE-1", headers=disp), 404)
    error_of(await client.patch(f"{BASE}/troubleTicket/NOPE-1", json={}, headers=disp), 404)
    error_of(await client.delete(url, headers=disp), 405)
    error_of(await client.put(url, json={}, headers=disp), 405)
    error_of(await client.get(f"{BASE}/hub", headers=disp), 405)
    error_of(await client.get(f"{BASE}/troubleTicketSpecification", headers=disp), 501)
    error_of(await client.get(f"{BASE}/nothing/here", headers=disp), 404)
    for params in ({"status": "sleeping"}, {"filter": "name[?(@=='x')]"}, {"sort": "name"}):
        error_of(await client.get(f"{BASE}/troubleTicket", params=params, headers=disp), 400)
    error_of(await client.get(f"{BASE}/troubleTicket", params={"limit": 0}, headers=disp), 400)

    assert counts(ctx.engine) == before
    same = (await client.get(url, headers=disp)).json()
    assert same == created


async def test_contacts_see_only_their_organisation_and_public_notes(
    client: httpx.AsyncClient,
) -> None:
    disp = await as_user(client, "disp")
    alice = await as_user(client, "alice")
    bob = await as_user(client, "bob")
    # Alice's ticket is her organisation's whatever she claims in relatedParty.
    body = NEW_TICKET | {
        "relatedParty": [
            {"role": "customer", "partyOrPartyRole": {"id": "bs", "name": "Bank South"}}
        ]
    }
    mine = await client.post(f"{BASE}/troubleTicket", json=body, headers=alice)
    assert mine.status_code == 201, mine.text
    number = mine.json()["id"]
    tix = (await client.get(f"/api/v1/tickets/{number}", headers=disp)).json()
    assert tix["organisation"] == "Bank North"
    await client.post(
        f"/api/v1/tickets/{number}/comments",
        json={"body": "internal remark", "visibility": "internal"},
        headers=disp,
    )
    await client.post(
        f"/api/v1/tickets/{number}/comments",
        json={"body": "partner remark", "visibility": "partner"},
        headers=disp,
    )
    await client.post(
        f"/api/v1/tickets/{number}/comments",
        json={"body": "we are on it", "visibility": "public"},
        headers=disp,
    )
    seen = conforms(
        "TroubleTicket_RES",
        (await client.get(f"{BASE}/troubleTicket/{number}", headers=alice)).json(),
    )
    assert [n["text"] for n in seen["note"]] == ["Please call before arriving", "we are on it"]
    staff_view = (await client.get(f"{BASE}/troubleTicket/{number}", headers=disp)).json()
    assert [n["text"] for n in staff_view["note"]] == [
        "Please call before arriving",
        "partner remark",
        "we are on it",
    ]
    # Alice adds a note (a public comment); Bob sees nothing of it.
    response = await client.patch(
        f"{BASE}/troubleTicket/{number}", json={"note": [{"text": "any news?"}]}, headers=alice
    )
    assert response.status_code == 200, response.text
    error_of(await client.get(f"{BASE}/troubleTicket/{number}", headers=bob), 404)
    error_of(await client.patch(f"{BASE}/troubleTicket/{number}", json={}, headers=bob), 404)
    assert (await client.get(f"{BASE}/troubleTicket", headers=bob)).json() == []
    assert [t["id"] for t in (await client.get(f"{BASE}/troubleTicket", headers=alice)).json()] == [
        number
    ]


async def test_hub_subscribe_retrieve_unsubscribe(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    disp = await as_user(client, "disp")
    alice = await as_user(client, "alice")
    for body in (
        {"callback": "ftp://listener.example/x"},
        {"callback": "http://user:pw@listener.example/x"},
        {"callback": "listener.example/x"},
        {"callback": "http://listener.example/x", "query": "status=resolved"},
        {"callback": "http://listener.example/x", "query": "eventType=TicketExploded"},
        {"query": "eventType=TroubleTicketCreateEvent"},
    ):
        error_of(await client.post(f"{BASE}/hub", json=body, headers=disp), 400)
    response = await client.post(
        f"{BASE}/hub",
        json={
            "@type": "Hub",
            "callback": "https://listener.example/tmf/listener",
            "query": "eventType=TroubleTicketStatusChangeEvent,TroubleTicketResolvedEvent",
        },
        headers=disp,
    )
    assert response.status_code == 201, response.text
    hub = conforms("Hub", response.json())
    got = await client.get(f"{BASE}/hub/{hub['id']}", headers=disp)
    assert conforms("Hub", got.json()) == hub
    error_of(await client.get(f"{BASE}/hub/{hub['id']}", headers=alice), 404)
    error_of(await client.delete(f"{BASE}/hub/{hub['id']}", headers=alice), 404)
    assert (await client.delete(f"{BASE}/hub/{hub['id']}", headers=disp)).status_code == 204
    error_of(await client.get(f"{BASE}/hub/{hub['id']}", headers=disp), 404)
    with Session(ctx.engine) as session:
        assert session.exec(select(func.count()).select_from(TmfHub)).one() == 0


async def _drain(ctx: NodeContext, client: httpx.AsyncClient, rounds: int = 20) -> None:
    """Derive and deliver until nothing is left to do (bounded)."""
    for _ in range(rounds):
        read = await asyncio.to_thread(
            notifier.derive, ctx.engine, identity=ctx.identity, settings=FAST
        )
        sent = await notifier.deliver_once(ctx.engine, client, FAST)
        if not read and not sent:
            return
        await asyncio.sleep(0.03)


def pending(ctx: NodeContext) -> int:
    with Session(ctx.engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(TmfNotification)
                .where(col(TmfNotification.state) == "pending")
            ).one()
        )


async def test_events_reach_a_listener_in_order_and_survive_it_being_down(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    disp = await as_user(client, "disp")
    alice = await as_user(client, "alice")
    async with notifier.client_for(FAST, LOOPBACK) as http:
        await _drain(ctx, http)  # the cursor starts at the end of the timeline
        with listener() as staff_listener, listener() as contact_listener:
            for headers, target in ((disp, staff_listener), (alice, contact_listener)):
                response = await client.post(
                    f"{BASE}/hub", json={"callback": target.url}, headers=headers
                )
                assert response.status_code == 201, response.text
            number = (
                await client.post(f"{BASE}/troubleTicket", json=NEW_TICKET, headers=disp)
            ).json()["id"]
            other = (
                await client.post(
                    f"{BASE}/troubleTicket",
                    json=NEW_TICKET | {"relatedParty": []},
                    headers=disp,
                )
            ).json()["id"]
            await _drain(ctx, http)
            assert [
                (e["eventType"], e["event"]["troubleTicket"]["id"]) for e in staff_listener.events
            ] == [
                ("TroubleTicketCreateEvent", number),
                ("TroubleTicketCreateEvent", other),
            ]
            assert contact_listener.types() == ["TroubleTicketCreateEvent"], "Bank North's only"

            # The staff listener goes down; changes keep coming and wait for it.
            staff_listener.set_down(True)
            url = f"{BASE}/troubleTicket/{number}"
            changes: list[tuple[str, dict[str, Any], dict[str, str]]] = [
                (url, {"status": "pending", "statusChangeReason": "which room?"}, disp),
                (url, {"note": [{"text": "room 4"}]}, alice),
                (f"/api/v1/tickets/{number}/comments", {"body": "partners only"}, disp),
                (url, {"status": "inProgress"}, disp),
                (url, {"status": "resolved"}, disp),
            ]
            for path, body, headers in changes:
                method = client.post if path.startswith("/api") else client.patch
                response = await method(path, json=body, headers=headers)
                assert response.status_code in (200, 201), response.text
                await _drain(ctx, http, rounds=2)  # the notifier's poll between changes
            assert staff_listener.refused >= 2, "retried while down"
            assert len(staff_listener.events) == 2 and pending(ctx) > 0
            staff_listener.set_down(False)
            for _ in range(20):
                await _drain(ctx, http)
                if pending(ctx) == 0:
                    break
                await asyncio.sleep(0.05)
            assert pending(ctx) == 0

            expected_staff = [
                "TroubleTicketStatusChangeEvent",
                "TroubleTicketInformationRequiredEvent",
                "TroubleTicketAttributeValueChangeEvent",  # alice's note
                "TroubleTicketAttributeValueChangeEvent",  # the partner comment
                "TroubleTicketStatusChangeEvent",
                "TroubleTicketStatusChangeEvent",
                "TroubleTicketResolvedEvent",
            ]
            assert staff_listener.types()[2:] == expected_staff
            # The contact never hears of the partner-only comment.
            assert contact_listener.types() == ["TroubleTicketCreateEvent"] + [
                t for i, t in enumerate(expected_staff) if i != 3
            ]
            for received in staff_listener.events + contact_listener.events:
                conforms(received["eventType"], received)
            statuses = [
                e["event"]["troubleTicket"]["status"]
                for e in staff_listener.events
                if e["eventType"] == "TroubleTicketStatusChangeEvent"
            ]
            assert statuses[-1] == "resolved"
            info = next(
                e for e in staff_listener.events if e["eventType"].endswith("RequiredEvent")
            )
            assert info["event"]["troubleTicket"]["status"] in ("pending", "inProgress", "resolved")
            assert len({e["eventId"] for e in staff_listener.events}) == len(staff_listener.events)


def notifications(ctx: NodeContext) -> list[tuple[str, int]]:
    with Session(ctx.engine) as session:
        rows = session.exec(select(TmfNotification).order_by(col(TmfNotification.id))).all()
        return [(row.event_type, row.ticket_id) for row in rows]


async def test_a_timeline_line_that_commits_late_is_not_skipped(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    """The cursor passes an id whose transaction has not committed; it is read once it has."""
    disp = await as_user(client, "disp")
    await asyncio.to_thread(notifier.derive, ctx.engine, identity=ctx.identity, settings=FAST)
    hub = await client.post(f"{BASE}/hub", json={"callback": "http://127.0.0.1:9/"}, headers=disp)
    assert hub.status_code == 201
    number = (await client.post(f"{BASE}/troubleTicket", json=NEW_TICKET, headers=disp)).json()[
        "id"
    ]
    await asyncio.to_thread(notifier.derive, ctx.engine, identity=ctx.identity, settings=FAST)
    with Session(ctx.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        top = session.exec(select(func.max(TicketEvent.id))).one()
    assert ticket.id is not None and top is not None
    assert notifications(ctx) == [("TroubleTicketCreateEvent", ticket.id)]

    def line(**kw: Any) -> TicketEvent:
        return TicketEvent(ticket_id=ticket.id, kind="updated", detail={"fields": ["title"]}, **kw)

    if ctx.engine.dialect.name == "postgresql":
        late = Session(ctx.engine)
        held = line()
        late.add(held)
        late.flush()  # holds an id below the next one, uncommitted
        missing = held.id
        with session_scope(ctx.engine) as session:
            session.add(line())
        await asyncio.to_thread(notifier.derive, ctx.engine, identity=ctx.identity, settings=FAST)
        assert len(notifications(ctx)) == 2
        late.commit()
        late.close()
    else:  # SQLite commits in id order; leave an id out by hand
        with session_scope(ctx.engine) as session:
            session.add(line(id=top + 2))
        await asyncio.to_thread(notifier.derive, ctx.engine, identity=ctx.identity, settings=FAST)
        assert len(notifications(ctx)) == 2
        with session_scope(ctx.engine) as session:
            session.add(line(id=top + 1))
        missing = top + 1
    with Session(ctx.engine) as session:
        cursor = session.exec(select(TmfCursor)).one()
        assert str(missing) in cursor.gaps, "the missing id is remembered"
    await asyncio.to_thread(notifier.derive, ctx.engine, identity=ctx.identity, settings=FAST)
    assert (
        notifications(ctx)
        == [("TroubleTicketCreateEvent", ticket.id)]
        + [("TroubleTicketAttributeValueChangeEvent", ticket.id)] * 2
    )
    with Session(ctx.engine) as session:
        assert str(missing) not in session.exec(select(TmfCursor)).one().gaps


async def test_a_callback_on_loopback_gets_nothing_unless_the_operator_allows_it(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    """B18: a TMF client chooses its callback URL; by default the node posts only to public
    addresses, so a callback at its own loopback is never connected to (and stays pending)."""
    disp = await as_user(client, "disp")
    async with notifier.client_for(FAST) as strict:
        await _drain(ctx, strict)
        with listener() as target:
            response = await client.post(f"{BASE}/hub", json={"callback": target.url}, headers=disp)
            assert response.status_code == 201, response.text
            await client.post(f"{BASE}/troubleTicket", json=NEW_TICKET, headers=disp)
            await _drain(ctx, strict, rounds=3)
            assert target.events == []
            with Session(ctx.engine) as session:
                rows = session.exec(select(TmfNotification)).all()
            assert rows and all(row.state == "pending" for row in rows)
            assert all(
                (row.last_error or "").startswith("EgressRefused: egress refused: 127.0.0.1")
                for row in rows
            )
