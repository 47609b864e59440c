"""Fetching attachment content by digest from a partner node over real HTTP (uvicorn on loopback).

The owner, ``acme``, serves only the federation router over a database where one attachment
is on a ticket delegated to ``northwind`` and another is on a ticket shared with nobody. The
requester, ``northwind``, fetches with node tokens signed by its key: the valid case, and every
way the owner must refuse (wrong key, unknown kid, wrong audience, expired, too long-lived,
replayed, another digest, a user token, a suspended link, a digest not shared), plus what the
fetcher itself must refuse (content that does not hash to the digest, too much content, a
redirect, a non-http URL). Both nodes' rows live in one database of each backend.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from account.attachments import federation
from account.attachments import service as attachment_service
from account.attachments.models import Attachment
from account.attachments.tokens import NODE_TOKEN_TYP, mint_node_token
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.delegations.models import Delegation
from account.http_errors import install_error_handlers
from account.links.models import Link
from account.tickets.models import Ticket
from exchange.clock import aware, utcnow
from exchange.egress import parse_allow
from exchange.signing import generate_key
from tests.support.db import clear_tables
from tests.support.private_broker import free_port

CONTENT = b"%PDF-1.7\n" + bytes(range(256)) * 40
SECRET = b"not shared with anybody\n" * 10
DIGEST = hashlib.sha256(CONTENT).hexdigest()
SECRET_DIGEST = hashlib.sha256(SECRET).hexdigest()


@dataclass
class World:
    owner: NodeContext
    requester: Identity
    requester_settings: Settings
    base_url: str

    def url(self, digest: str = DIGEST) -> str:
        return f"{self.base_url}/api/v1/federation/attachments/{digest}"

    def fetch(self, **overrides: Any) -> None:
        kwargs: dict[str, Any] = {
            "base_url": self.base_url,
            "owner": "acme",
            "sha256": DIGEST,
            "identity": self.requester,
            "store": attachment_service.blob_store(self.requester_settings),
            "max_bytes": 1024 * 1024,
            "policy": self.requester_settings.egress_policy,
        }
        federation.fetch_blob(**(kwargs | overrides))


def owner_app(ctx: NodeContext) -> FastAPI:
    app = FastAPI()
    app.state.ctx = ctx
    app.include_router(federation.router)
    install_error_handlers(app)

    @app.get("/moved/api/v1/federation/attachments/{digest}")
    def moved(digest: str) -> RedirectResponse:
        return RedirectResponse(f"/api/v1/federation/attachments/{digest}")

    return app


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    clear_tables(engine)
    acme = Identity("acme", "ACME", generate_key())
    northwind = Identity("northwind", "Northwind", generate_key())
    owner = NodeContext(
        settings=Settings(account_id="acme", data_dir=tmp_path / "acme"),
        engine=engine,
        identity=acme,
        secret=b"s" * 48,
    )
    # The owner listens on loopback, which a node reaches only when its operator allows it.
    requester_settings = Settings(
        account_id="northwind", data_dir=tmp_path / "northwind", egress_allow="127.0.0.0/8"
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with session_scope(engine) as session:
        link = Link(
            id=str(uuid.uuid4()),
            account_id="acme",
            peer_account="northwind",
            direction="downstream",
            peer_public_key=northwind.public_key,
            peer_kid=northwind.kid,
        )
        shared = Ticket(number="ACME-1", account_id="acme", title="shared", chain_id=_uuid())
        private = Ticket(number="ACME-2", account_id="acme", title="private", chain_id=_uuid())
        session.add_all([link, shared, private])
        session.flush()
        assert shared.id is not None and private.id is not None
        session.add(
            Delegation(
                delegation_id=_uuid(),
                account_id="acme",
                role="out",
                link_id=link.id,
                peer_account="northwind",
                ticket_id=shared.id,
                state="accepted",
            )
        )
        for ticket_id, data in ((shared.id, CONTENT), (private.id, SECRET)):
            session.add(_attachment(ticket_id, data, stored=True))
    store = attachment_service.blob_store(owner.settings)
    store.put(CONTENT)
    store.put(SECRET)

    config = uvicorn.Config(
        owner_app(owner), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield World(owner, northwind, requester_settings, base_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        clear_tables(engine)


def _uuid() -> str:
    return str(uuid.uuid4())


def _attachment(ticket_id: int, data: bytes, *, stored: bool, **extra: Any) -> Attachment:
    return Attachment(
        attachment_id=_uuid(),
        ticket_id=ticket_id,
        filename="manual.pdf",
        content_type="application/pdf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        stored=stored,
        **extra,
    )


def token(identity: Identity, **claims: Any) -> str:
    """A node token with the given claims overriding valid ones; ``headers`` override too."""
    now = int(time.time())
    headers = {"kid": identity.kid, "typ": NODE_TOKEN_TYP} | claims.pop("headers", {})
    key = claims.pop("key", identity.key)
    body = {
        "iss": identity.account_id,
        "aud": "tix:acme:federation",
        "sub": DIGEST,
        "iat": now,
        "exp": now + 60,
        "jti": _uuid(),
    } | claims
    return jwt.encode(body, key, algorithm=claims.pop("alg", "EdDSA"), headers=headers)


def get(world: World, bearer: str | None, digest: str = DIGEST) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return httpx.get(world.url(digest), headers=headers, timeout=10)


# -- the owner's endpoint --------------------------------------------------------------------------


def test_a_linked_partner_with_a_valid_token_gets_the_content(world: World) -> None:
    response = get(
        world, mint_node_token(identity=world.requester, audience_account="acme", subject=DIGEST)
    )

    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not a jwt",
        "wrong key, pinned kid",
        "unknown kid",
        "wrong audience",
        "list audience",
        "expired",
        "issued in the future",
        "lifetime too long",
        "no exp",
        "no jti",
        "another digest",
        "unlinked issuer",
        "hs256",
        "alg none",
        "wrong typ",
        "crit header",
    ],
)
def test_tokens_that_do_not_authenticate_get_a_uniform_401(world: World, case: str) -> None:
    me, now = world.requester, int(time.time())
    stranger = Identity("globex", "Globex", generate_key())
    cases: dict[str, Callable[[], str | None]] = {
        "missing": lambda: None,
        "not a jwt": lambda: "abc.def.ghi",
        "wrong key, pinned kid": lambda: token(me, key=generate_key()),
        "unknown kid": lambda: token(Identity("northwind", "N", generate_key())),
        "wrong audience": lambda: token(me, aud="tix:globex:federation"),
        "list audience": lambda: token(me, aud=["tix:acme:federation", "x"]),
        "expired": lambda: token(me, iat=now - 200, exp=now - 100),
        "issued in the future": lambda: token(me, iat=now + 120, exp=now + 150),
        "lifetime too long": lambda: token(me, exp=now + 3600),
        "no exp": lambda: _without(token(me), "exp", me),
        "no jti": lambda: _without(token(me), "jti", me),
        "another digest": lambda: token(me, sub=SECRET_DIGEST),
        "unlinked issuer": lambda: token(stranger),
        "hs256": lambda: jwt.encode(
            {
                "iss": "northwind",
                "aud": "tix:acme:federation",
                "sub": DIGEST,
                "iat": now,
                "exp": now + 60,
                "jti": "x",
            },
            me.public_key,
            algorithm="HS256",
            headers={"kid": me.kid, "typ": NODE_TOKEN_TYP},
        ),
        "alg none": lambda: _alg_none(me, now),
        "wrong typ": lambda: token(me, headers={"typ": "JWT"}),
        "crit header": lambda: token(me, headers={"crit": ["x"], "x": 1}),
    }

    response = get(world, cases[case]())

    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "not authenticated"}


def _without(_: str, claim: str, identity: Identity) -> str:
    now = int(time.time())
    claims = {
        "iss": identity.account_id,
        "aud": "tix:acme:federation",
        "sub": DIGEST,
        "iat": now,
        "exp": now + 60,
        "jti": _uuid(),
    }
    del claims[claim]
    return jwt.encode(
        claims,
        identity.key,
        algorithm="EdDSA",
        headers={"kid": identity.kid, "typ": NODE_TOKEN_TYP},
    )


def _alg_none(identity: Identity, now: int) -> str:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": "none", "typ": NODE_TOKEN_TYP, "kid": identity.kid}
    claims = {
        "iss": "northwind",
        "aud": "tix:acme:federation",
        "sub": DIGEST,
        "iat": now,
        "exp": now + 60,
        "jti": _uuid(),
    }
    return f"{part(header)}.{part(claims)}."


def test_a_token_is_good_for_one_request_only(world: World) -> None:
    bearer = token(world.requester)

    assert get(world, bearer).status_code == 200
    assert get(world, bearer).status_code == 401


def test_a_digest_the_partner_does_not_share_answers_404(world: World) -> None:
    not_shared = get(world, token(world.requester, sub=SECRET_DIGEST), SECRET_DIGEST)
    unknown = get(world, token(world.requester, sub="e" * 64), "e" * 64)

    assert (not_shared.status_code, unknown.status_code) == (404, 404)
    assert not_shared.json() == unknown.json(), "no hint that the digest exists"


def test_an_internal_attachment_is_not_served_even_on_a_shared_ticket(world: World) -> None:
    with session_scope(world.owner.engine) as session:
        for row in session.exec(select(Attachment).where(Attachment.sha256 == DIGEST)).all():
            row.visibility = "internal"
            session.add(row)

    assert get(world, token(world.requester)).status_code == 404


def test_nothing_is_served_over_a_suspended_link(world: World) -> None:
    with session_scope(world.owner.engine) as session:
        link = session.exec(select(Link).where(Link.account_id == "acme")).one()
        link.state = "suspended"
        session.add(link)

    assert get(world, token(world.requester)).status_code == 401


# -- the fetcher -----------------------------------------------------------------------------------


def test_fetch_stores_the_content_under_its_digest(world: World) -> None:
    world.fetch()

    store = attachment_service.blob_store(world.requester_settings)
    assert store.read(DIGEST) == CONTENT


def test_fetch_discards_content_that_does_not_hash_to_the_digest(world: World) -> None:
    owner_blob = attachment_service.blob_store(world.owner.settings).path(DIGEST)
    owner_blob.write_bytes(CONTENT[:-1] + b"!")  # tampered on the serving side

    with pytest.raises(federation.FetchError, match="digest"):
        world.fetch()

    assert_nothing_kept(world)


def test_fetch_stops_at_the_size_limit(world: World) -> None:
    with pytest.raises(federation.FetchError, match="limit"):
        world.fetch(max_bytes=len(CONTENT) - 1)

    assert_nothing_kept(world)


def test_fetch_follows_no_redirect_and_takes_only_http_urls(world: World) -> None:
    with pytest.raises(federation.FetchError, match="HTTP 307"):
        world.fetch(base_url=f"{world.base_url}/moved")
    for bad in ("ftp://127.0.0.1/", "file:///etc", "http://user:pw@127.0.0.1:1"):
        with pytest.raises(federation.FetchError, match="http"):
            world.fetch(base_url=bad)

    assert_nothing_kept(world)


def test_fetch_with_a_key_the_owner_has_not_pinned_is_refused(world: World) -> None:
    impostor = Identity("northwind", "Northwind", generate_key())

    with pytest.raises(federation.FetchError, match="HTTP 401"):
        world.fetch(identity=impostor)


def test_fetch_from_a_closed_port_fails_fast(world: World) -> None:
    started = time.monotonic()

    with pytest.raises(federation.FetchError):
        world.fetch(base_url=f"http://127.0.0.1:{free_port()}", connect_timeout=2.0)

    assert time.monotonic() - started < 5


def assert_nothing_kept(world: World) -> None:
    root = world.requester_settings.data_dir / "blobs"
    assert not root.exists() or [p for p in root.rglob("*") if p.is_file()] == []


# -- fetch_pending ---------------------------------------------------------------------------------


def waiting_row(world: World, digest: str, size: int) -> int:
    """A northwind attachment received from acme without content; return its row id."""
    with session_scope(world.owner.engine) as session:
        link = Link(
            id=_uuid(),
            account_id="northwind",
            peer_account="acme",
            direction="upstream",
            peer_public_key=world.owner.identity.public_key,
            peer_kid=world.owner.identity.kid,
            peer_api_url=world.base_url,
        )
        ticket = Ticket(number="NORTHWIND-9", account_id="northwind", title="t", chain_id=_uuid())
        session.add_all([link, ticket])
        session.flush()
        assert ticket.id is not None
        delegation = Delegation(
            delegation_id=_uuid(),
            account_id="northwind",
            role="in",
            link_id=link.id,
            peer_account="acme",
            ticket_id=ticket.id,
            state="accepted",
        )
        session.add(delegation)
        session.flush()
        row = Attachment(
            attachment_id=_uuid(),
            ticket_id=ticket.id,
            filename="manual.pdf",
            content_type="application/pdf",
            size=size,
            sha256=digest,
            source_account="acme",
            source_delegation_id=delegation.id,
            stored=False,
            next_fetch_at=utcnow(),
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def test_fetch_pending_fetches_what_is_due_and_marks_it_stored(world: World) -> None:
    row_id = waiting_row(world, DIGEST, len(CONTENT))

    fetched = federation.fetch_pending(
        world.owner.engine, world.requester, world.requester_settings
    )

    assert fetched == 1
    with Session(world.owner.engine) as session:
        row = session.get(Attachment, row_id)
        assert row is not None and row.stored and row.next_fetch_at is None
    store = attachment_service.blob_store(world.requester_settings)
    assert store.read(DIGEST) == CONTENT
    assert (
        federation.fetch_pending(world.owner.engine, world.requester, world.requester_settings) == 0
    )


def test_fetch_pending_backs_off_after_a_failure(world: World) -> None:
    row_id = waiting_row(world, SECRET_DIGEST, len(SECRET))  # acme does not share this one
    before = utcnow()

    fetched = federation.fetch_pending(
        world.owner.engine, world.requester, world.requester_settings
    )

    assert fetched == 0
    with Session(world.owner.engine) as session:
        row = session.get(Attachment, row_id)
        assert row is not None and not row.stored and row.fetch_tries == 1
        assert row.fetch_error == "partner answered HTTP 404"
        assert row.next_fetch_at is not None
        assert aware(row.next_fetch_at) >= before + timedelta(seconds=4)
    assert (
        federation.fetch_pending(world.owner.engine, world.requester, world.requester_settings) == 0
    )


def test_a_partner_url_on_loopback_is_refused_unless_the_operator_allows_it(world: World) -> None:
    """B18: a partner's API URL pointing at our loopback makes no connection by default."""
    row_id = waiting_row(world, DIGEST, len(CONTENT))
    strict = world.requester_settings.model_copy(update={"egress_allow": ""})

    fetched = federation.fetch_pending(world.owner.engine, world.requester, strict)

    assert fetched == 0
    with Session(world.owner.engine) as session:
        row = session.get(Attachment, row_id)
        assert row is not None and not row.stored and row.fetch_tries == 1
        assert row.fetch_error is not None
        assert row.fetch_error.startswith("EgressRefused: egress refused: 127.0.0.1 resolves")
    assert not attachment_service.blob_store(strict).has(DIGEST)


def test_a_host_name_allowed_by_name_is_fetched_from_the_address_it_was_checked_at(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An allow-listed name may resolve to a private address (a partner on the LAN); the
    connection goes to the address that was checked, with the name kept in ``Host``."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "partner.internal":
            asked.append(host)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    base = world.base_url.replace("127.0.0.1", "partner.internal")

    with pytest.raises(federation.FetchError, match="not a public address"):
        world.fetch(base_url=base, policy=parse_allow(""))
    world.fetch(base_url=base, policy=parse_allow("partner.internal"))

    assert asked == ["partner.internal", "partner.internal"]
    assert attachment_service.blob_store(world.requester_settings).read(DIGEST) == CONTENT
