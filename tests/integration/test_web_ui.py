"""The web UI of one node in-process (no broker), on SQLite and PostgreSQL.

Cookie sessions (as strict as the API's tokens), CSRF on every form, errors as messages on the
page, English and Russian, and the contact portal's scoping: another organisation's ticket is a
404 page, internal comments never show, a contact comments publicly and rates.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from account import security
from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.links import service as link_service
from account.links.models import InvitationCreate, Link
from account.tickets import service as ticket_service
from account.tickets.models import Comment, CommentCreate, Ticket, TicketCreate
from account.users import service as user_service
from account.users.models import ApiKeyCreate, User, UserUpdate
from exchange.signing import generate_key
from tests.support.db import clear_tables

PASSWORD = "password-123"
SECRET = b"s" * 48


@functools.cache
def password_hash() -> str:
    """One scrypt hash for every test user (hashing is deliberately slow)."""
    return security.hash_password(PASSWORD)


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    settings = Settings(account_id="acme", data_dir=tmp_path)
    identity = Identity(account_id="acme", label="ACME Vendor", key=generate_key())
    with session_scope(engine) as session:
        for name, role, org in (
            ("root", "admin", None),
            ("disp", "dispatcher", None),
            ("eng", "engineer", None),
            ("alice", "contact", "Bank North"),
            ("bob", "contact", "Bank South"),
        ):
            session.add(
                User(
                    username=name,
                    password_hash=password_hash(),
                    role=role,
                    organisation=org,
                    full_name=name,
                )
            )
    yield NodeContext(settings=settings, engine=engine, identity=identity, secret=SECRET)
    clear_tables(engine)


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as http:
        yield http


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash \w+"[^>]*>([^<]*)</p>', html)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; return the page CSRF token of the new session."""
    form = await client.get("/ui/login")
    assert form.status_code == 200
    response = await client.post(
        "/ui/login",
        data={"username": username, "password": password, "csrf": hidden(form.text, "csrf")},
    )
    assert response.status_code == 303, response.text
    page = await client.get("/ui/tickets/new")
    assert page.status_code == 200
    return hidden(page.text, "csrf")


def make_ticket(engine: Engine, title: str, organisation: str | None) -> str:
    with session_scope(engine) as session:
        ticket = ticket_service.create(
            session=session,
            account_id="acme",
            ticket_in=TicketCreate(title=title, organisation=organisation),
        )
        return ticket.number


# -- sessions -----------------------------------------------------------------------------------


async def test_pages_need_a_login_and_the_login_form_sets_a_strict_httponly_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ui/tickets?status=open")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Ftickets%3Fstatus%3Dopen"
    root = await client.get("/")
    assert (root.status_code, root.headers["location"]) == (303, "/ui/tickets")

    form = await client.get("/ui/login")
    response = await client.post(
        "/ui/login",
        data={
            "username": "disp",
            "password": PASSWORD,
            "csrf": hidden(form.text, "csrf"),
            "next": "/ui/tickets?status=open",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/tickets?status=open"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("tix_session_acme=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/ui" in cookie.lower()
    page = await client.get("/ui/tickets")
    assert page.status_code == 200
    assert "disp" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


async def test_wrong_password_or_missing_login_csrf_gives_no_session(
    client: httpx.AsyncClient,
) -> None:
    form = await client.get("/ui/login")
    token = hidden(form.text, "csrf")
    wrong = await client.post(
        "/ui/login", data={"username": "disp", "password": "nope-nope", "csrf": token}
    )
    assert wrong.status_code == 401
    assert flashes(wrong.text) == ["Incorrect username or password."]
    assert "tix_session_acme" not in client.cookies

    client.cookies.clear()
    forged = await client.post(
        "/ui/login", data={"username": "disp", "password": PASSWORD, "csrf": token}
    )
    assert forged.status_code == 403
    assert "tix_session_acme" not in client.cookies
    assert (await client.get("/ui/tickets")).status_code == 303


async def test_repeated_wrong_passwords_are_throttled_with_a_polite_page(
    ctx: NodeContext, client: httpx.AsyncClient
) -> None:
    async def attempt(password: str) -> httpx.Response:
        form = await client.get("/ui/login")
        data = {"username": "disp", "password": password, "csrf": hidden(form.text, "csrf")}
        return await client.post("/ui/login", data=data)

    for _ in range(ctx.settings.login_failures_per_user):
        assert (await attempt("nope-nope")).status_code == 401
    # Past the limit even the right password is not checked, and no session is made.
    throttled = await attempt(PASSWORD)
    assert throttled.status_code == 429
    assert flashes(throttled.text) == ["Too many failed sign-ins. Please try again in 15 min."]
    assert int(throttled.headers["retry-after"]) > 0
    assert "tix_session_acme" not in client.cookies
    # Another user signs in from the same address.
    await login(client, "eng")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda: "not-a-jwt", id="garbage"),
        pytest.param(
            lambda: security.create_access_token(
                username="disp", role="admin", secret=SECRET, account_id="other", minutes=5
            ),
            id="another-node",
        ),
        pytest.param(
            lambda: security.create_access_token(
                username="disp", role="admin", secret=b"x" * 48, account_id="acme", minutes=5
            ),
            id="another-secret",
        ),
        pytest.param(
            lambda: jwt.encode(
                {
                    "iss": "tix:acme",
                    "aud": "tix:acme:api",
                    "sub": "disp",
                    "iat": int(time.time()) - 7200,
                    "exp": int(time.time()) - 3600,
                },
                SECRET,
                algorithm="HS256",
                headers={"typ": "at+jwt"},
            ),
            id="expired",
        ),
        pytest.param(
            lambda: jwt.encode(
                {"iss": "tix:acme", "aud": "tix:acme:api", "sub": "disp", "iat": 1, "exp": 2**40},
                SECRET,
                algorithm="HS256",
            ),
            id="not-typed-as-access-token",
        ),
    ],
)
async def test_a_session_cookie_is_checked_as_strictly_as_an_api_token(
    client: httpx.AsyncClient, make_token: object
) -> None:
    assert callable(make_token)
    client.cookies.set("tix_session_acme", make_token(), path="/ui")
    response = await client.get("/ui/tickets")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


async def test_api_keys_do_not_pass_as_a_session_and_deactivated_users_are_out_at_once(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    with session_scope(ctx.engine) as session:
        disp = user_service.get_by_username(session=session, username="disp")
        assert disp is not None
        _row, key = user_service.create_api_key(
            session=session, user=disp, key_in=ApiKeyCreate(name="k")
        )
    client.cookies.set("tix_session_acme", key, path="/ui")
    assert (await client.get("/ui/tickets")).status_code == 303

    client.cookies.clear()
    await login(client, "disp")
    assert (await client.get("/ui/tickets")).status_code == 200
    with session_scope(ctx.engine) as session:
        disp = user_service.get_by_username(session=session, username="disp")
        assert disp is not None
        user_service.update(session=session, user=disp, user_in=UserUpdate(active=False))
    assert (await client.get("/ui/tickets")).status_code == 303


async def test_logout_needs_the_csrf_token_and_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    csrf = await login(client, "disp")
    refused = await client.post("/ui/logout", data={})
    assert refused.status_code == 403
    assert (await client.get("/ui/tickets")).status_code == 200
    out = await client.post("/ui/logout", data={"csrf": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
    assert "tix_session_acme" not in client.cookies
    assert (await client.get("/ui/tickets")).status_code == 303


# -- CSRF -------------------------------------------------------------------------------------


async def test_every_form_refuses_a_post_without_this_sessions_csrf_token(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    number = make_ticket(ctx.engine, "printer", None)
    other = httpx.AsyncClient(transport=client._transport, base_url="http://acme.test")
    async with other:
        other_csrf = await login(other, "root")
    csrf = await login(client, "disp")
    posts = [
        ("/ui/tickets/new", {"title": "forged"}),
        (f"/ui/tickets/{number}/comments", {"body": "forged", "visibility": "public"}),
        (f"/ui/tickets/{number}/status", {"status": "in_progress"}),
        (f"/ui/tickets/{number}/delegate", {"partner": "someone"}),
        ("/ui/links/invite", {}),
        ("/ui/links/accept", {"token": "x" * 20}),
    ]
    for path, data in posts:
        for token in (None, "", "A" * 43, other_csrf):
            body = data | ({"csrf": token} if token is not None else {})
            response = await client.post(path, data=body)
            assert response.status_code == 403, (path, token)
            assert "Refused" in response.text
        as_json = await client.post(path, json=data | {"csrf": csrf})
        assert as_json.status_code == 403, path
    with Session(ctx.engine) as session:
        assert session.exec(select(Ticket).where(Ticket.title == "forged")).first() is None
        assert session.exec(select(Comment)).all() == []
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        assert ticket.status == "new"

    upload = await client.post(
        f"/ui/tickets/{number}/attachments",
        files={"file": ("a.txt", b"hello", "text/plain")},
        data={"visibility": "partner"},
    )
    assert upload.status_code == 403

    ok = await client.post(f"/ui/tickets/{number}/status", data={"csrf": csrf, "status": "open"})
    assert ok.status_code == 303


# -- errors as messages --------------------------------------------------------------------------


async def test_refused_actions_come_back_as_messages_on_the_page(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    csrf = await login(client, "disp")
    created = await client.post(
        "/ui/tickets/new",
        data={"csrf": csrf, "title": "ATM 0417 out of service", "priority": "high", "site": "B12"},
    )
    assert created.status_code == 303
    url = created.headers["location"]
    page = await client.get(url)
    assert flashes(page.text) == [f"Ticket {url.rsplit('/', 1)[1]} created."]
    assert "B12" in page.text

    bad = await client.post(url + "/status", data={"csrf": csrf, "status": "closed"})
    assert bad.status_code == 303
    page = await client.get(url)
    assert flashes(page.text) == ["cannot move a ticket from new to closed"]
    assert "Traceback" not in page.text
    again = await client.get(url)
    assert flashes(again.text) == [], "a message shows once"

    delegate = await client.post(url + "/delegate", data={"csrf": csrf, "partner": "nobody"})
    assert delegate.status_code == 303
    assert flashes((await client.get(url)).text) == ["no link to nobody"]

    empty = await client.post("/ui/tickets/new", data={"csrf": csrf, "title": ""})
    assert empty.status_code == 400
    assert "title" in flashes(empty.text)[0]

    missing = await client.get("/ui/tickets/ACME-999")
    assert missing.status_code == 404
    assert "Not found" in missing.text
    assert (await client.get("/ui/no/such/page")).status_code == 404


async def test_engineers_cannot_take_dispatcher_actions(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    number = make_ticket(ctx.engine, "lift", None)
    csrf = await login(client, "eng")
    response = await client.post(
        f"/ui/tickets/{number}/delegate", data={"csrf": csrf, "partner": "northwind"}
    )
    assert response.status_code == 303
    assert flashes((await client.get(f"/ui/tickets/{number}")).text) == [
        "not allowed for your role"
    ]
    assert (await client.get("/ui/links")).status_code == 404


# -- i18n -------------------------------------------------------------------------------------


async def test_russian_from_the_browser_preference_the_switch_and_its_cookie(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    english = await client.get("/ui/login")
    assert "Log in" in english.text and english.headers["content-language"] == "en"
    russian = await client.get("/ui/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert "Войти" in russian.text and russian.headers["content-language"] == "ru"

    switch = await client.get("/ui/lang/ru", params={"next": "/ui/login"})
    assert (switch.status_code, switch.headers["location"]) == (303, "/ui/login")
    assert client.cookies.get("tix_lang") == "ru"
    await login(client, "disp")
    number = make_ticket(ctx.engine, "kassa", None)
    page = await client.get(f"/ui/tickets/{number}")
    assert "Комментарии" in page.text and "новая" in page.text
    assert page.headers["content-language"] == "ru"

    for evil in ("//evil.example/x", "https://evil.example/", "/ui\\@evil", "/api/v1/tickets"):
        bounce = await client.get("/ui/lang/en", params={"next": evil})
        assert bounce.headers["location"] == "/ui/tickets", evil
    unknown = await client.get("/ui/lang/xx", params={"next": "/ui/tickets"})
    assert unknown.status_code == 303
    assert client.cookies.get("tix_lang") == "en"


# -- the contact portal -------------------------------------------------------------------------


async def test_a_contact_sees_only_their_organisation_public_comments_and_can_comment_and_rate(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    mine = make_ticket(ctx.engine, "North ATM jammed", "Bank North")
    theirs = make_ticket(ctx.engine, "South vault door", "Bank South")
    with session_scope(ctx.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == mine)).one()
        for body, visibility in (
            ("we are on it", "public"),
            ("partner only note", "partner"),
            ("internal gossip", "internal"),
        ):
            ticket_service.add_comment(
                session=session,
                ticket=ticket,
                comment_in=CommentCreate(body=body, visibility=visibility),  # type: ignore[arg-type]
                author="disp",
            )
        ticket_service.set_status(session=session, ticket=ticket, target="resolved", note="fixed")

    csrf = await login(client, "alice")
    listing = await client.get("/ui/tickets")
    assert "North ATM jammed" in listing.text
    assert "South vault door" not in listing.text
    other = await client.get(f"/ui/tickets/{theirs}")
    assert other.status_code == 404
    assert "South vault door" not in other.text
    assert (await client.get(f"/ui/tickets/{theirs}/chain")).status_code == 404
    forged = await client.post(
        f"/ui/tickets/{theirs}/comments", data={"csrf": csrf, "body": "hi", "visibility": "public"}
    )
    assert forged.status_code == 404

    page = await client.get(f"/ui/tickets/{mine}")
    assert "we are on it" in page.text
    assert "partner only note" not in page.text and "internal gossip" not in page.text
    assert 'id="chain"' not in page.text, "contacts do not see the chain"
    assert 'name="visibility" value="public"' in page.text

    internal = await client.post(
        f"/ui/tickets/{mine}/comments", data={"csrf": csrf, "body": "x", "visibility": "internal"}
    )
    assert internal.status_code == 303
    assert flashes((await client.get(f"/ui/tickets/{mine}")).text) == [
        "contacts write public comments only"
    ]
    said = await client.post(
        f"/ui/tickets/{mine}/comments",
        data={"csrf": csrf, "body": "thanks, works now", "visibility": "public"},
    )
    assert said.status_code == 303
    rated = await client.post(
        f"/ui/tickets/{mine}/rating", data={"csrf": csrf, "score": "4", "comment": "quick"}
    )
    assert rated.status_code == 303
    page = await client.get(f"/ui/tickets/{mine}")
    assert "thanks, works now" in page.text
    assert "★★★★☆" in page.text
    with Session(ctx.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == mine)).one()
        assert (ticket.rating, ticket.rating_comment) == (4, "quick")
        other_ticket = session.exec(select(Ticket).where(Ticket.number == theirs)).one()
        assert other_ticket.rating is None


async def test_a_contact_creates_tickets_for_their_own_organisation_only(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    csrf = await login(client, "bob")
    created = await client.post(
        "/ui/tickets/new",
        data={"csrf": csrf, "title": "Vault alarm", "organisation": "Bank North"},
    )
    assert created.status_code == 303
    with Session(ctx.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.title == "Vault alarm")).one()
        assert ticket.organisation == "Bank South"


# -- attachments --------------------------------------------------------------------------------


async def test_upload_and_download_an_attachment_with_its_visibility(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    number = make_ticket(ctx.engine, "photo please", "Bank North")
    csrf = await login(client, "disp")
    for name, visibility in (("public.txt", "public"), ("partner.txt", "partner")):
        response = await client.post(
            f"/ui/tickets/{number}/attachments",
            data={"csrf": csrf, "visibility": visibility},
            files={"file": (name, f"content of {name}".encode(), "text/plain")},
        )
        assert response.status_code == 303
        assert flashes((await client.get(f"/ui/tickets/{number}")).text) == ["File uploaded."]
    page = (await client.get(f"/ui/tickets/{number}")).text
    pattern = r'href="(/ui/tickets/[^"]+/attachments/[^"]+)"[^>]*>([^<]+)<'
    links = {name: path for path, name in re.findall(pattern, page)}
    assert set(links) == {"public.txt", "partner.txt"}
    download = await client.get(links["partner.txt"])
    assert download.content == b"content of partner.txt"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "attachment" in download.headers["content-disposition"]

    client.cookies.clear()
    await login(client, "alice")
    page = (await client.get(f"/ui/tickets/{number}")).text
    assert "public.txt" in page and "partner.txt" not in page
    assert (await client.get(links["partner.txt"])).status_code == 404
    assert (await client.get(links["public.txt"])).content == b"content of public.txt"


# -- reports ------------------------------------------------------------------------------------


async def test_the_reports_page_is_for_dispatchers_and_says_when_the_period_is_wrong(
    client: httpx.AsyncClient,
) -> None:
    await login(client, "eng")
    assert (await client.get("/ui/reports")).status_code == 404
    assert (await client.get("/ui/reports/partners.csv")).status_code == 404
    client.cookies.clear()
    await login(client, "disp")
    page = await client.get("/ui/reports")
    assert page.status_code == 200
    assert "Partner scorecards" in page.text and "SLA compliance" in page.text
    assert "No data for this period." in page.text
    backwards = await client.get("/ui/reports", params={"from": "2026-12-01", "to": "2026-11-01"})
    assert backwards.status_code == 400
    assert flashes(backwards.text) == ["from must be before to"]
    csv = await client.get("/ui/reports/sla.csv", params={"from": "2026-11-01"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert (await client.get("/ui/reports/secrets.csv")).status_code == 404


async def test_sla_badges_and_the_sla_filter_of_the_list(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    late = make_ticket(ctx.engine, "late one", None)
    risky = make_ticket(ctx.engine, "risky one", None)
    make_ticket(ctx.engine, "calm one", None)
    with session_scope(ctx.engine) as session:
        for number, state in ((late, "breached"), (risky, "at_risk")):
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            ticket.sla_state = state
            session.add(ticket)
    await login(client, "disp")
    everything = (await client.get("/ui/tickets")).text
    assert 'class="badge sla-breached"' in everything and 'class="badge sla-at_risk"' in everything
    breached = (await client.get("/ui/tickets", params={"sla": "breached"})).text
    assert "late one" in breached and "risky one" not in breached and "calm one" not in breached
    at_risk = (await client.get("/ui/tickets", params={"sla": "at_risk"})).text
    assert "risky one" in at_risk and "late one" not in at_risk
    ignored = (await client.get("/ui/tickets", params={"sla": "nonsense"})).text
    assert "calm one" in ignored


async def test_a_dispatcher_assigns_an_engineer_who_finds_it_under_assigned_to_me(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    number = make_ticket(ctx.engine, "boiler pressure", None)
    make_ticket(ctx.engine, "somebody else's", None)
    csrf = await login(client, "disp")
    page = (await client.get(f"/ui/tickets/{number}")).text
    assert '<option value="eng">' in page and '<option value="alice">' not in page
    stranger = await client.post(
        f"/ui/tickets/{number}/assign", data={"csrf": csrf, "assignee": "alice"}
    )
    assert stranger.status_code == 303
    assert flashes((await client.get(f"/ui/tickets/{number}")).text) == ["no such colleague"]
    assigned = await client.post(
        f"/ui/tickets/{number}/assign", data={"csrf": csrf, "assignee": "eng"}
    )
    assert assigned.status_code == 303
    assert flashes((await client.get(f"/ui/tickets/{number}")).text) == ["Assigned to eng."]

    client.cookies.clear()
    csrf = await login(client, "eng")
    mine = (await client.get("/ui/tickets", params={"mine": "1"})).text
    assert "boiler pressure" in mine and "somebody else" not in mine
    refused = await client.post(f"/ui/tickets/{number}/assign", data={"csrf": csrf, "assignee": ""})
    assert refused.status_code == 303
    with Session(ctx.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        assert ticket.assignee == "eng"


# -- partners -----------------------------------------------------------------------------------


async def test_partners_page_invites_accepts_edits_the_contract_and_suspends(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    csrf = await login(client, "root")
    invited = await client.post(
        "/ui/links/invite",
        data={
            "csrf": csrf,
            "disclose_subcontractors": "anonymous",
            "allow_subdelegation": "1",
            "categories": "atm, hvac",
            "sla": '{"targets": {"high": {"resolution_minutes": 480}}}',
            "expires_in_days": "3",
        },
    )
    assert invited.status_code == 201
    token = re.search(r'id="invitation-token"[^>]*>([^<]+)<', invited.text)
    assert token is not None
    claims = jwt.decode(token.group(1), options={"verify_signature": False})
    assert claims["contract"]["disclose_subcontractors"] == "anonymous"
    assert claims["contract"]["categories"] == ["atm", "hvac"]
    assert claims["contract"]["sla"]["targets"]["high"]["resolution_minutes"] == 480
    assert claims["contract"]["share_requester_contacts"] is False

    bad_sla = await client.post("/ui/links/invite", data={"csrf": csrf, "sla": "{not json"})
    assert bad_sla.status_code == 303
    assert flashes((await client.get("/ui/links")).text) == ["the SLA policy is not valid JSON"]
    own = await client.post("/ui/links/accept", data={"csrf": csrf, "token": token.group(1)})
    assert own.status_code == 303
    assert flashes((await client.get("/ui/links")).text) == ["an account cannot link to itself"]

    # An invitation from another company (its token carries its key), accepted here.
    northwind = Identity(account_id="northwind", label="Northwind", key=generate_key())
    with session_scope(ctx.engine) as session:
        _invitation, theirs = link_service.create_invitation(
            session=session, identity=northwind, invitation_in=InvitationCreate()
        )
    accepted = await client.post("/ui/links/accept", data={"csrf": csrf, "token": theirs})
    assert accepted.status_code == 303
    page = (await client.get("/ui/links")).text
    assert flashes(page) == ["Linked to Northwind."]
    link_id = re.search(r'action="/ui/links/([0-9a-f-]{36})"', page)
    assert link_id is not None
    url = f"/ui/links/{link_id.group(1)}"

    saved = await client.post(
        url,
        data={
            "csrf": csrf,
            "op": "contract",
            "disclose_subcontractors": "hidden",
            "share_requester_contacts": "1",
            "categories": "",
            "sla": "",
        },
    )
    assert saved.status_code == 303
    assert flashes((await client.get("/ui/links")).text) == ["Contract saved."]
    suspended = await client.post(url, data={"csrf": csrf, "op": "suspend"})
    assert suspended.status_code == 303
    with Session(ctx.engine) as session:
        link = session.exec(select(Link).where(Link.peer_account == "northwind")).one()
        assert link.state == "suspended"
        assert link.contract["disclose_subcontractors"] == "hidden"
        assert link.contract["share_requester_contacts"] is True
        assert link.contract["allow_subdelegation"] is False
    resumed = await client.post(url, data={"csrf": csrf, "op": "resume"})
    assert resumed.status_code == 303
    assert flashes((await client.get("/ui/links")).text) == ["Link resumed."]
    missing = await client.post(
        "/ui/links/00000000-0000-0000-0000-000000000000", data={"csrf": csrf, "op": "suspend"}
    )
    assert missing.status_code == 404


async def test_an_unexpected_error_is_a_page_without_the_trace_and_the_api_keeps_its_500(
    ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_kwargs: object) -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    transport = httpx.ASGITransport(app=create_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as client:
        await login(client, "disp")
        monkeypatch.setattr(ticket_service, "list_visible", broken)
        page = await client.get("/ui/tickets")
        assert page.status_code == 500
        assert "Something went wrong" in page.text
        assert "secret internals" not in page.text and "Traceback" not in page.text
        api = await client.get("/api/v1/tickets", headers=await bearer(client, "disp"))
        assert (api.status_code, api.text) == (500, "Internal Server Error")


async def bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# -- users --------------------------------------------------------------------------------------


async def test_admins_add_people_and_deactivate_them_with_the_services_rules(
    client: httpx.AsyncClient, ctx: NodeContext
) -> None:
    csrf = await login(client, "root")
    added = await client.post(
        "/ui/users",
        data={
            "csrf": csrf,
            "username": "carol",
            "password": "carol-password",
            "full_name": "Carol Client",
            "role": "contact",
            "organisation": "Bank North",
        },
    )
    assert (added.status_code, added.headers["location"]) == (303, "/ui/users")
    page = (await client.get("/ui/users")).text
    assert flashes(page) == ["User carol added."]
    assert 'data-username="carol"' in page

    taken = await client.post(
        "/ui/users",
        data={"csrf": csrf, "username": "carol", "password": "another-one", "role": "contact"},
    )
    assert taken.status_code == 400
    assert flashes(taken.text) == ["a user with that username already exists"]
    short = await client.post(
        "/ui/users",
        data={"csrf": csrf, "username": "dave", "password": "short", "role": "engineer"},
    )
    assert short.status_code == 400 and "password" in flashes(short.text)[0]
    assert 'value="dave"' in short.text, "the form keeps what was typed (not the password)"

    with Session(ctx.engine) as session:
        carol = user_service.get_by_username(session=session, username="carol")
        root = user_service.get_by_username(session=session, username="root")
        assert carol is not None and carol.organisation == "Bank North" and root is not None
        carol_id, root_id = carol.id, root.id
    off = await client.post(f"/ui/users/{carol_id}", data={"csrf": csrf, "active": "0"})
    assert off.status_code == 303
    assert flashes((await client.get("/ui/users")).text) == ["carol can no longer log in."]
    last_admin = await client.post(f"/ui/users/{root_id}", data={"csrf": csrf, "active": "0"})
    assert last_admin.status_code == 303
    assert flashes((await client.get("/ui/users")).text) == [
        "the last active admin cannot be demoted or deactivated"
    ]
    assert (
        await client.post("/ui/users/99999", data={"csrf": csrf, "active": "0"})
    ).status_code == 404

    other = httpx.AsyncClient(transport=client._transport, base_url="http://acme.test")
    async with other:
        form = await other.get("/ui/login")
        refused = await other.post(
            "/ui/login",
            data={
                "username": "carol",
                "password": "carol-password",
                "csrf": hidden(form.text, "csrf"),
            },
        )
        assert refused.status_code == 401
        await login(other, "disp")
        assert (await other.get("/ui/users")).status_code == 404
        assert (
            await other.post("/ui/users", data={"csrf": "x", "username": "eve"})
        ).status_code == 403
