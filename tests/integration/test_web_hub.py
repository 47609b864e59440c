"""The partners page's hub part: a real hub app on loopback (uvicorn, tap off) and two node apps
in-process, each on its own database and key; the hub's database and the nodes' are on the
same backend, SQLite then PostgreSQL (``db_backend``).

The upstream's admin searches the directory and invites a company from the results; the
invitation arrives at the other node (the poller's count in the nav), whose admin sees who sends
it and what the contract says (SLA, disclosure, expiry) and accepts it in one click; a second
invitation is declined with a reason, the hub drops its token, and the sender's poller learns
the answer: its partners page, API and invitation show it. Forms need this session's CSRF
token, non-admins are refused, and a node without a hub or with its hub down shows a message,
never a 500.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from account import security
from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.hub import poller
from account.hub import service as hub_service
from account.hub.models import HubSentInvitation
from account.links.models import Invitation, Link
from account.messaging.models import OutboxMessage
from account.users.models import User
from exchange.hub.models import HubInvitation
from exchange.signing import generate_key
from tests.support.db import database_url, engine_for
from tests.support.hub import HubServer, serve_hub
from tests.support.private_broker import free_port

PASSWORD = "password-123"
SECRET = b"h" * 48
SLA = '{"targets": {"high": {"response_minutes": 60, "resolution_minutes": 480}}}'


@pytest.fixture
def hub(tmp_path: Path, db_backend: str) -> Iterator[HubServer]:
    """The hub's app on a free loopback port (no broker: the audit tap is off), its database
    on ``db_backend``."""
    with serve_hub(tmp_path, db_backend) as server:
        yield server


def _node(
    stack: ExitStack,
    tmp_path: Path,
    account: str,
    label: str,
    hub_url: str,
    *,
    backend: str = "sqlite",
) -> NodeContext:
    url = stack.enter_context(database_url(backend, tmp_path / account))
    engine = stack.enter_context(engine_for(url))
    settings = Settings(account_id=account, data_dir=tmp_path / account, hub_url=hub_url)
    with session_scope(engine) as session:
        for name, role in (("root", "admin"), ("disp", "dispatcher")):
            session.add(
                User(username=name, password_hash=_hash(), role=role, full_name=name.title())
            )
    identity = Identity(account_id=account, label=label, key=generate_key())
    return NodeContext(settings=settings, engine=engine, identity=identity, secret=SECRET)


_HASH: list[str] = []


def _hash() -> str:
    if not _HASH:
        _HASH.append(security.hash_password(PASSWORD))
    return _HASH[0]


@asynccontextmanager
async def browser(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://{ctx.account_id}.test"
    ) as http:
        yield http


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash \w+"[^>]*>([^<]*)</p>', html)


async def login(client: httpx.AsyncClient, username: str) -> str:
    form = await client.get("/ui/login")
    response = await client.post(
        "/ui/login",
        data={"username": username, "password": PASSWORD, "csrf": hidden(form.text, "csrf")},
    )
    assert response.status_code == 303, response.text
    return hidden((await client.get("/ui/tickets")).text, "csrf")


async def follow(client: httpx.AsyncClient, response: httpx.Response) -> str:
    """The page a 303 leads to (with its flash message)."""
    assert response.status_code == 303, response.text
    return (await client.get(response.headers["location"])).text


def invite_form(csrf: str, to: str, **extra: str) -> dict[str, str]:
    return {
        "csrf": csrf,
        "to": to,
        "disclose_subcontractors": "anonymous",
        "allow_subdelegation": "1",
        "sla": SLA,
        "note": "maintenance of lifts",
        "expires_in_days": "7",
        **extra,
    }


def _at_hub(hub: HubServer) -> list[HubInvitation]:
    with Session(hub.engine) as session:
        return list(session.exec(select(HubInvitation)).all())


def _pending_at_hub(hub: HubServer) -> list[HubInvitation]:
    return [row for row in _at_hub(hub) if row.state == "pending"]


async def _api_headers(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    token = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def test_an_admin_finds_a_company_invites_it_and_the_other_accepts_in_one_click(
    hub: HubServer, tmp_path: Path, db_backend: str
) -> None:
    backend = db_backend
    with ExitStack() as stack:
        acme = _node(stack, tmp_path, "acme-w", "ACME Lifts", hub.url, backend=backend)
        bravo = _node(stack, tmp_path, "bravo-w", "Bravo Service", hub.url, backend=backend)
        for ctx in (acme, bravo):
            await hub_service.register(ctx)
        async with browser(acme) as a, browser(bravo) as b:
            a_csrf = await login(a, "root")
            b_csrf = await login(b, "root")

            # Search: the other company is found, this node itself is not listed.
            found = (await a.get("/ui/links", params={"q": "bravo"})).text
            assert 'data-account="bravo-w"' in found and "Bravo Service" in found
            everyone = (await a.get("/ui/links", params={"q": "-w"})).text
            assert 'data-account="acme-w"' not in everyone
            assert "No company matches." in (await a.get("/ui/links?q=zzz-nobody")).text
            long = await a.get("/ui/links", params={"q": "b" * 5000})
            assert long.status_code == 200 and "No company matches." in long.text

            # A forged or missing CSRF token sends nothing.
            for token in (None, "A" * 43, b_csrf):
                data = invite_form(token or "", "bravo-w")
                if token is None:
                    del data["csrf"]
                refused = await a.post("/ui/links/hub/invite", data=data)
                assert refused.status_code == 403 and "Refused" in refused.text
            assert _pending_at_hub(hub) == []

            # Invite from the results: the contract as chosen travels in the token.
            page = await follow(
                a, await a.post("/ui/links/hub/invite", data=invite_form(a_csrf, "bravo-w"))
            )
            assert flashes(page) == ["Invitation sent to bravo-w through the hub."]
            assert len(_pending_at_hub(hub)) == 1
            with Session(acme.engine) as session:
                sent = session.exec(select(Invitation)).one()
                assert sent.contract["disclose_subcontractors"] == "anonymous"

            # It arrives: the poller's count shows next to "Partners" without opening the page.
            assert 'id="hub-pending"' not in (await b.get("/ui/tickets")).text
            assert await poller.poll_once(bravo) == 1
            nav = (await b.get("/ui/tickets")).text
            assert re.search(r'id="hub-pending"[^>]*>1<', nav)

            # Bravo's partners page: who, the contract (SLA, disclosure), the expiry.
            page = (await b.get("/ui/links")).text
            rows = re.findall(
                r'class="hub-row incoming" data-from="([^"]+)" data-id="([^"]+)"', page
            )
            assert [frm for frm, _ in rows] == ["acme-w"]
            invitation_id = rows[0][1]
            assert "ACME Lifts" in page and "maintenance of lifts" in page
            assert "Disclose subcontractors: anonymous" in page
            assert "high — response 60 min, resolution 480 min" in page
            assert "expires" in page
            russian = (await b.get("/ui/links", headers={"Accept-Language": "ru"})).text
            assert "Входящие приглашения" in russian and "реакция 60 мин" in russian

            # Accept needs the CSRF token too; then one click links both sides.
            accept = f"/ui/links/incoming/{invitation_id}/accept"
            refused = await b.post(accept, data={"csrf": a_csrf})
            assert refused.status_code == 403
            page = await follow(b, await b.post(accept, data={"csrf": b_csrf}))
            assert flashes(page) == ["Linked to ACME Lifts."]
            assert 'data-partner="acme-w"' in page and 'id="incoming-invitations"' not in page
            assert 'id="hub-pending"' not in page
            with Session(bravo.engine) as session:
                link = session.exec(select(Link)).one()
                assert (link.peer_account, link.direction) == ("acme-w", "upstream")
                assert link.contract["disclose_subcontractors"] == "anonymous"
                accept_row = session.exec(select(OutboxMessage)).one()
                assert accept_row.type == "link.accept" and accept_row.to_account == "acme-w"
            # The hub forgot the token and keeps only the answer, for the sender.
            [answered] = _at_hub(hub)
            assert (answered.state, answered.token) == ("accepted", "")
            # A second click is a message, not an error page.
            again = await follow(b, await b.post(accept, data={"csrf": b_csrf}))
            assert flashes(again) == ["no such incoming invitation"]

            # The sender's poller learns the answer (the link.accept has no broker to travel
            # on here), records it and lets the hub forget it.
            page = (await a.get("/ui/links")).text
            assert re.search(
                r'class="hub-row sent" data-to="bravo-w" [^>]*data-state="accepted"', page
            )
            assert _at_hub(hub) == []
            assert await poller.poll_once(acme) == 0

            # A second invitation, declined with a reason: the hub drops the token, nothing is
            # linked anew.
            await follow(
                a, await a.post("/ui/links/hub/invite", data=invite_form(a_csrf, "bravo-w"))
            )
            page = (await a.get("/ui/links")).text
            assert re.search(
                r'class="hub-row sent" data-to="bravo-w" [^>]*data-state="pending"', page
            )

            page = (await b.get("/ui/links")).text
            second = re.findall(
                r'class="hub-row incoming" data-from="[^"]+" data-id="([^"]+)"', page
            )
            assert len(second) == 1 and 'name="reason"' in page
            decline = f"/ui/links/incoming/{second[0]}/decline"
            assert (await b.post(decline, data={"csrf": a_csrf})).status_code == 403
            assert (await b.post(decline, data={})).status_code == 403
            assert len(_pending_at_hub(hub)) == 1
            reason = "  we do not cover your region  "
            declined = await follow(
                b, await b.post(decline, data={"csrf": b_csrf, "reason": reason})
            )
            assert flashes(declined) == ["Invitation from ACME Lifts declined."]
            assert _pending_at_hub(hub) == []
            [answered] = _at_hub(hub)
            assert (answered.state, answered.token) == ("declined", "")
            assert answered.reason == "we do not cover your region"
            with Session(bravo.engine) as session:
                assert len(session.exec(select(Link)).all()) == 1

            # The sender learns it: its poller records the answer, revokes the invitation (its
            # token cannot link any more) and the hub forgets the answer.
            with Session(acme.engine) as session:
                waiting = session.exec(
                    select(HubSentInvitation).where(HubSentInvitation.state == "pending")
                ).one()
                open_invitation = session.get(Invitation, waiting.invitation_id)
                assert open_invitation is not None and open_invitation.state == "open"
            assert await poller.poll_once(acme) == 0
            assert _at_hub(hub) == []
            with Session(acme.engine) as session:
                by_state = {r.state: r for r in session.exec(select(HubSentInvitation)).all()}
                assert sorted(by_state) == ["accepted", "declined"]
                assert by_state["declined"].reason == "we do not cover your region"
                assert by_state["declined"].decided_at is not None
                assert by_state["declined"].invitation_id == open_invitation.id
                revoked = session.get(Invitation, open_invitation.id)
                assert revoked is not None and revoked.state == "revoked"

            # The partners page and the API show it, in English and Russian.
            page = (await a.get("/ui/links")).text
            assert re.search(
                r'class="hub-row sent" data-to="bravo-w" [^>]*data-state="declined"', page
            )
            assert "we do not cover your region" in page and 'id="sent-stale"' not in page
            russian = (await a.get("/ui/links", headers={"Accept-Language": "ru"})).text
            assert 'id="sent-invitations"' in russian and "отклонено" in russian
            headers = await _api_headers(a, "root")
            listed = (await a.get("/api/v1/hub/invitations", headers=headers)).json()
            assert listed["synced"] is True and listed["total"] == 2
            newest, oldest = listed["items"]
            assert (newest["to"], newest["state"], newest["reason"]) == (
                "bravo-w",
                "declined",
                "we do not cover your region",
            )
            assert oldest["state"] == "accepted" and oldest["reason"] == ""
            assert newest["link_id"] == open_invitation.link_id
            dispatcher = await _api_headers(a, "disp")
            assert (await a.get("/api/v1/hub/invitations", headers=dispatcher)).status_code == 403


async def test_non_admins_never_reach_the_hub_and_the_api_declines_too(
    hub: HubServer, tmp_path: Path, db_backend: str
) -> None:
    with ExitStack() as stack:
        acme = _node(stack, tmp_path, "acme-n", "ACME", hub.url, backend=db_backend)
        bravo = _node(stack, tmp_path, "bravo-n", "Bravo", hub.url, backend=db_backend)
        for ctx in (acme, bravo):
            await hub_service.register(ctx)
        async with browser(acme) as a, browser(bravo) as b:
            a_csrf = await login(a, "root")
            await follow(
                a, await a.post("/ui/links/hub/invite", data=invite_form(a_csrf, "bravo-n"))
            )
            [pending] = _pending_at_hub(hub)
            d_csrf = await login(b, "disp")
            assert (await b.get("/ui/links")).status_code == 404
            for action in ("accept", "decline"):
                answer = await b.post(
                    f"/ui/links/incoming/{pending.id}/{action}", data={"csrf": d_csrf}
                )
                assert answer.status_code == 404
            answer = await b.post("/ui/links/hub/invite", data=invite_form(d_csrf, "acme-n"))
            assert answer.status_code == 404
            assert len(_pending_at_hub(hub)) == 1
            with Session(bravo.engine) as session:
                assert session.exec(select(Link)).all() == []

            # The JSON API: a dispatcher is refused; an admin declines through it.
            token = await b.post(
                "/api/v1/auth/token", data={"username": "disp", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            path = f"/api/v1/links/incoming/{pending.id}/decline"
            assert (await b.post(path, headers=headers)).status_code == 403
            token = await b.post(
                "/api/v1/auth/token", data={"username": "root", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            declined = await b.post(path, headers=headers)
            assert declined.status_code == 200 and declined.json()["from"] == "acme-n"
            assert _pending_at_hub(hub) == []
            assert (await b.post(path, headers=headers)).status_code == 404


async def test_without_a_hub_or_with_the_hub_down_the_page_says_so(tmp_path: Path) -> None:
    with ExitStack() as stack:
        alone = _node(stack, tmp_path, "alone", "Alone", "")
        down = _node(stack, tmp_path, "downhub", "Down", f"http://127.0.0.1:{free_port()}")
        async with browser(alone) as a, browser(down) as d:
            a_csrf = await login(a, "root")
            page = await a.get("/ui/links", params={"q": "x"})
            assert page.status_code == 200 and 'id="hub-none"' in page.text
            assert 'id="accept-invitation"' in page.text  # tokens by hand still work
            sent = await follow(
                a, await a.post("/ui/links/hub/invite", data=invite_form(a_csrf, "bravo"))
            )
            assert flashes(sent) == ["this node has no hub configured (TIX_HUB_URL)"]
            with Session(alone.engine) as session:
                assert session.exec(select(Invitation)).all() == []

            d_csrf = await login(d, "root")
            page = await d.get("/ui/links", params={"q": "x"})
            assert page.status_code == 200 and 'id="hub-problem"' in page.text
            assert "The hub cannot be reached now" in page.text
            for response in (
                await d.post("/ui/links/hub/invite", data=invite_form(d_csrf, "bravo")),
                await d.post("/ui/links/incoming/abc/accept", data={"csrf": d_csrf}),
                await d.post("/ui/links/incoming/abc/decline", data={"csrf": d_csrf}),
            ):
                shown = flashes(await follow(d, response))
                assert shown[0] == "The hub cannot be reached now; try again later.", shown
            with Session(down.engine) as session:
                assert session.exec(select(Invitation)).all() == []  # all or nothing
            assert await poller.poll_once(down) is None
            assert down.status["hub"] == "down"
