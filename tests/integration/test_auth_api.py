"""Login, users and API keys over HTTP, in-process (no broker), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.types import Receive, Scope, Send

from account import security
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.http_errors import BodySizeLimit, install_error_handlers
from account.users import service as user_service
from account.users.models import UserCreate
from account.users.views import router
from exchange.signing import generate_key
from tests.support.db import clear_tables

NODE = "acme"
SECRET = b"x" * 48
MAX_BODY = 4096
ADMIN = ("root", "root-password-1")


def build_context(engine: Engine, data_dir: Path, account_id: str = NODE) -> NodeContext:
    settings = Settings(account_id=account_id, data_dir=data_dir, max_body_bytes=MAX_BODY)
    identity = Identity(account_id=account_id, label=account_id, key=generate_key())
    return NodeContext(settings=settings, engine=engine, identity=identity, secret=SECRET)


def build_app(ctx: NodeContext) -> FastAPI:
    app = FastAPI()
    app.state.ctx = ctx
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=ctx.settings.max_body_bytes)
    return app


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    context = build_context(engine, tmp_path)
    with session_scope(engine) as session:
        user_service.ensure_admin(session=session, username=ADMIN[0], password=ADMIN[1])
    yield context
    clear_tables(engine)


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://tix.test") as http:
        yield http


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def build_user_in(username: str, role: str = "dispatcher", **extra: Any) -> dict[str, Any]:
    return {"username": username, "password": f"{username}-password", "role": role, **extra}


async def create_user(
    client: httpx.AsyncClient, admin: dict[str, str], **user: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/users", json=user, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# -- login ----------------------------------------------------------------------------------


async def test_login_returns_a_bearer_token_that_reads_me(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]}
    )
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 60 * 60
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["username"] == ADMIN[0] and me.json()["role"] == "admin"
    assert "password_hash" not in me.json()


async def test_wrong_password_and_unknown_user_get_the_same_401(client: httpx.AsyncClient) -> None:
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": ADMIN[0], "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": "ghost", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "incorrect username or password"}
    assert wrong.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer tix_" + "a" * 43},
        {"Authorization": "Basic cm9vdDpyb290"},
    ],
)
async def test_me_without_valid_credentials_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "not authenticated"}


async def test_token_of_another_node_is_refused(client: httpx.AsyncClient) -> None:
    token = security.create_access_token(
        username=ADMIN[0], role="admin", secret=SECRET, account_id="globex", minutes=5
    )
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


# -- users ----------------------------------------------------------------------------------


async def test_admin_creates_a_dispatcher_and_a_contact(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    dispatcher = await create_user(client, admin, **build_user_in("dora", full_name="Dora D."))
    contact = await create_user(
        client, admin, **build_user_in("carl", "contact", organisation="Globex")
    )
    assert dispatcher["role"] == "dispatcher" and dispatcher["full_name"] == "Dora D."
    assert contact["role"] == "contact" and contact["organisation"] == "Globex"
    assert dispatcher["active"] and "password" not in dispatcher

    listing = await client.get("/api/v1/users", headers=admin)
    assert listing.status_code == 200
    assert listing.json()["total"] == 3
    assert [u["username"] for u in listing.json()["items"]] == ["root", "dora", "carl"]
    page = (
        await client.get("/api/v1/users", params={"limit": 1, "offset": 1}, headers=admin)
    ).json()
    assert page["total"] == 3 and [u["username"] for u in page["items"]] == ["dora"]

    me = await client.get("/api/v1/users/me", headers=await login(client, "carl", "carl-password"))
    assert me.json()["organisation"] == "Globex"


async def test_duplicate_username_is_409(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    await create_user(client, admin, **build_user_in("dora"))
    response = await client.post("/api/v1/users", json=build_user_in("dora"), headers=admin)
    assert response.status_code == 409
    assert response.json() == {"detail": "a user with that username already exists"}


async def test_invalid_user_input_is_422(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    bad = build_user_in("dora", "superuser")
    assert (await client.post("/api/v1/users", json=bad, headers=admin)).status_code == 422


async def test_non_admin_gets_403_on_user_management(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    await create_user(client, admin, **build_user_in("dora"))
    dora = await login(client, "dora", "dora-password")
    response = await client.post("/api/v1/users", json=build_user_in("eve", "admin"), headers=dora)
    assert response.status_code == 403
    assert response.json() == {"detail": "not allowed for your role"}
    assert (await client.get("/api/v1/users", headers=dora)).status_code == 403
    assert (
        await client.patch("/api/v1/users/1", json={"role": "admin"}, headers=dora)
    ).status_code == 403


async def test_admin_deactivates_a_user_and_their_login_and_token_stop_working(
    client: httpx.AsyncClient,
) -> None:
    admin = await login(client, *ADMIN)
    dora_id = (await create_user(client, admin, **build_user_in("dora")))["id"]
    dora = await login(client, "dora", "dora-password")

    response = await client.patch(f"/api/v1/users/{dora_id}", json={"active": False}, headers=admin)
    assert response.status_code == 200 and response.json()["active"] is False

    assert (await client.get("/api/v1/users/me", headers=dora)).status_code == 401
    refused = await client.post(
        "/api/v1/auth/token", data={"username": "dora", "password": "dora-password"}
    )
    assert refused.status_code == 401


async def test_admin_changes_role_and_password(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    dora_id = (await create_user(client, admin, **build_user_in("dora")))["id"]
    change = {"role": "engineer", "password": "brand-new-password", "organisation": "Acme"}
    response = await client.patch(f"/api/v1/users/{dora_id}", json=change, headers=admin)
    assert response.status_code == 200
    assert response.json()["role"] == "engineer" and response.json()["organisation"] == "Acme"
    old = await client.post(
        "/api/v1/auth/token", data={"username": "dora", "password": "dora-password"}
    )
    assert old.status_code == 401
    await login(client, "dora", "brand-new-password")


async def test_patch_refuses_null_for_required_fields_and_unknown_users(
    client: httpx.AsyncClient,
) -> None:
    admin = await login(client, *ADMIN)
    dora_id = (await create_user(client, admin, **build_user_in("dora")))["id"]
    response = await client.patch(f"/api/v1/users/{dora_id}", json={"role": None}, headers=admin)
    assert response.status_code == 400 and response.json() == {"detail": "role cannot be null"}
    missing = await client.patch("/api/v1/users/999999", json={"active": False}, headers=admin)
    assert missing.status_code == 404 and missing.json() == {"detail": "user not found"}


async def test_an_id_beyond_what_an_id_column_holds_is_refused_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    """PostgreSQL's integer ids end at 2**31 - 1; a larger one raised a DataError (a 500)."""
    admin = await login(client, *ADMIN)
    for too_big in (2**31, 2**63):
        user = await client.patch(f"/api/v1/users/{too_big}", json={}, headers=admin)
        key = await client.delete(f"/api/v1/users/me/api-keys/{too_big}", headers=admin)
        assert (user.status_code, key.status_code) == (422, 422)
    largest = await client.patch(f"/api/v1/users/{2**31 - 1}", json={}, headers=admin)
    assert largest.status_code == 404


async def test_the_last_active_admin_cannot_be_demoted(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    me = (await client.get("/api/v1/users/me", headers=admin)).json()
    response = await client.patch(
        f"/api/v1/users/{me['id']}", json={"active": False}, headers=admin
    )
    assert response.status_code == 409
    second = await create_user(client, admin, **build_user_in("ada", "admin"))
    demoted = await client.patch(
        f"/api/v1/users/{me['id']}", json={"role": "dispatcher"}, headers=admin
    )
    assert demoted.status_code == 200
    ada = await login(client, "ada", "ada-password")
    last = await client.patch(
        f"/api/v1/users/{second['id']}", json={"role": "contact"}, headers=ada
    )
    assert last.status_code == 409


def test_ensure_admin_is_safe_to_run_twice(ctx: NodeContext) -> None:
    with session_scope(ctx.engine) as session:
        again = user_service.ensure_admin(session=session, username=ADMIN[0], password="other-pw-1")
        assert (
            user_service.authenticate_password(
                session=session, username=ADMIN[0], password=ADMIN[1]
            )
            == again
        )
        users, total = user_service.list_users(session=session, limit=10, offset=0)
    assert total == 1 and users[0].role == "admin"


def test_service_create_raises_user_exists(ctx: NodeContext) -> None:
    with session_scope(ctx.engine) as session, pytest.raises(user_service.UserExists):
        user_service.create(
            session=session, user_in=UserCreate(username=ADMIN[0], password="password-1")
        )


# -- API keys -------------------------------------------------------------------------------


async def test_api_key_works_as_bearer_until_revoked(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    created = await client.post("/api/v1/users/me/api-keys", json={"name": "ci"}, headers=admin)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("tix_") and len(key) == 47

    by_key = {"Authorization": f"Bearer {key}"}
    me = await client.get("/api/v1/users/me", headers=by_key)
    assert me.status_code == 200 and me.json()["username"] == ADMIN[0]

    listed = (await client.get("/api/v1/users/me/api-keys", headers=admin)).json()
    assert listed["total"] == 1
    item = listed["items"][0]
    assert item["name"] == "ci" and item["revoked"] is False and key.startswith(item["prefix"])
    assert "key" not in item and key not in created.text.replace(key, "", 1)

    revoked = await client.delete(f"/api/v1/users/me/api-keys/{item['id']}", headers=admin)
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/users/me", headers=by_key)).status_code == 401
    again = await client.delete(f"/api/v1/users/me/api-keys/{item['id']}", headers=admin)
    assert again.status_code == 204
    assert (await client.get("/api/v1/users/me/api-keys", headers=admin)).json()["items"][0][
        "revoked"
    ]


async def test_a_user_cannot_revoke_another_users_key(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    key_id = (
        await client.post("/api/v1/users/me/api-keys", json={"name": "ci"}, headers=admin)
    ).json()["id"]
    await create_user(client, admin, **build_user_in("dora"))
    dora = await login(client, "dora", "dora-password")
    response = await client.delete(f"/api/v1/users/me/api-keys/{key_id}", headers=dora)
    assert response.status_code == 404 and response.json() == {"detail": "API key not found"}


async def test_api_key_of_a_deactivated_user_stops_working(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    dora_id = (await create_user(client, admin, **build_user_in("dora")))["id"]
    dora = await login(client, "dora", "dora-password")
    key = (await client.post("/api/v1/users/me/api-keys", json={"name": "x"}, headers=dora)).json()[
        "key"
    ]
    assert (
        await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
    ).is_success
    await client.patch(f"/api/v1/users/{dora_id}", json={"active": False}, headers=admin)
    assert (
        await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
    ).status_code == 401


# -- body size ------------------------------------------------------------------------------


async def test_declared_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    big = build_user_in("dora", full_name="x" * (MAX_BODY + 1))
    response = await client.post("/api/v1/users", json=big, headers=admin)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body too large"}


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b'{"username": "dora", "full_name": "', b"x" * MAX_BODY, b'"}'):
            yield chunk

    headers = {**admin, "Content-Type": "application/json"}
    response = await client.post("/api/v1/users", content=chunks(), headers=headers)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert response.json() == {"detail": "request body too large"}


async def test_login_form_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    data = {"username": ADMIN[0], "password": "p" * (MAX_BODY + 1)}
    response = await client.post("/api/v1/auth/token", data=data)
    assert response.status_code == 413


async def test_body_under_the_limit_passes(client: httpx.AsyncClient) -> None:
    admin = await login(client, *ADMIN)
    await create_user(client, admin, **build_user_in("dora", full_name="x" * 200))


async def test_body_limit_answers_413_itself_when_the_app_does_not_handle_it() -> None:
    received: list[bytes] = []

    async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            received.append(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"x" * 8, b"x" * 8, b"x" * 8):
            yield chunk

    transport = httpx.ASGITransport(app=BodySizeLimit(raw_app, max_bytes=10))
    async with httpx.AsyncClient(transport=transport, base_url="http://tix.test") as http:
        response = await http.post("/", content=chunks())
        small = await http.post("/", content=b"x" * 10)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body too large"}
    assert small.status_code == 200 and small.text == "ok"


async def test_repeated_failed_sign_ins_are_throttled_per_user_and_address(
    ctx: NodeContext, client: httpx.AsyncClient
) -> None:
    admin = await login(client, *ADMIN)
    await create_user(client, admin, **build_user_in("disp"))
    limit = ctx.settings.login_failures_per_user
    for _ in range(limit):
        wrong = await client.post(
            "/api/v1/auth/token", data={"username": "disp", "password": "wrong-password"}
        )
        assert wrong.status_code == 401, wrong.text
    refused = await client.post(
        "/api/v1/auth/token", data={"username": "disp", "password": "disp-password"}
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["detail"].startswith("too many failed sign-ins")
    assert 1 <= int(refused.headers["retry-after"]) <= ctx.settings.login_failure_window_seconds
    # The same user from another address, and another user from this one, are not held up.
    elsewhere = httpx.ASGITransport(app=build_app(ctx), client=("10.9.8.7", 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://tix.test") as other:
        await login(other, "disp", "disp-password")
    await login(client, *ADMIN)


async def test_spraying_passwords_over_usernames_is_throttled_per_address(
    engine: Engine, tmp_path: Path
) -> None:
    clear_tables(engine)
    settings = Settings(account_id=NODE, data_dir=tmp_path, login_failures_per_address=4)
    identity = Identity(account_id=NODE, label=NODE, key=generate_key())
    ctx = NodeContext(settings=settings, engine=engine, identity=identity, secret=SECRET)
    with session_scope(engine) as session:
        user_service.ensure_admin(session=session, username=ADMIN[0], password=ADMIN[1])
    try:
        transport = httpx.ASGITransport(app=build_app(ctx), client=("10.1.1.1", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://tix.test") as spray:
            for n in range(4):
                wrong = await spray.post(
                    "/api/v1/auth/token", data={"username": f"user{n}", "password": "Winter2026"}
                )
                assert wrong.status_code == 401, wrong.text
            refused = await spray.post(
                "/api/v1/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]}
            )
            assert refused.status_code == 429, refused.text
        transport = httpx.ASGITransport(app=build_app(ctx), client=("10.1.1.2", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://tix.test") as admin:
            await login(admin, *ADMIN)
    finally:
        clear_tables(engine)
