"""The hub's API without a broker (tap off), on SQLite and PostgreSQL: signed requests, key
pinning, invitations, operator endpoints.

Every refusal is a 4xx ``{"detail": …}`` and changes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from exchange.hub import audit
from exchange.hub.app import create_app, make_engine
from exchange.hub.config import HubSettings
from exchange.hub.models import AuditEvent
from exchange.hub.requests import HUB_AUDIENCE, HUB_TYP, body_hash, sign_request
from exchange.signing import generate_key, kid_of, public_key_b64
from tests.support.db import BACKENDS, database_url

OPERATOR = "op-secret"


@pytest.fixture(params=BACKENDS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The hub's app on a fresh database of each backend (SQLite file, then PostgreSQL)."""
    with database_url(request.param, tmp_path) as url:
        settings = HubSettings(
            database_url=url, operator_token=SecretStr(OPERATOR), audit_tap=False
        )
        engine = make_engine(settings)
        try:
            transport = httpx.ASGITransport(app=create_app(settings, engine=engine))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
                yield http
        finally:
            engine.dispose()


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    key: Ed25519PrivateKey,
    account: str,
    body: Any = None,
    token: str | None = None,
) -> Any:
    data = b"" if body is None else json.dumps(body).encode()
    token = token or sign_request(key=key, account=account, method=method, path=path, body=data)
    return await client.request(
        method, path, content=data, headers={"Authorization": f"Bearer {token}"}
    )


async def register(
    client: httpx.AsyncClient,
    key: Ed25519PrivateKey,
    account: str,
    *,
    signer: Ed25519PrivateKey | None,
) -> Any:
    body = {"display_name": account.title(), "public_key": public_key_b64(key)}
    return await call(
        client, "PUT", "/hub/v1/directory/self", key=signer or key, account=account, body=body
    )


def invitation_token(key: Ed25519PrivateKey, account: str, *, exp_in: int = 3600) -> str:
    now = int(time.time())
    claims = {
        "iss": account,
        "aud": "tix:link-invitation",
        "sub": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + exp_in,
        "name": account,
        "pub": public_key_b64(key),
        "kid": kid_of(key.public_key()),
        "contract": {},
    }
    headers = {"kid": kid_of(key.public_key()), "typ": "tix-invite+jwt"}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


async def test_first_registration_pins_the_key_and_only_the_pinned_key_changes_it(
    client: httpx.AsyncClient,
) -> None:
    old, new, thief = generate_key(), generate_key(), generate_key()
    assert (await register(client, old, "acme", signer=None)).status_code == 200
    # Someone else's key cannot take the entry over, even signing with the key it offers.
    taken = await register(client, thief, "acme", signer=None)
    assert taken.status_code == 401 and "detail" in taken.json()
    # A key change signed by the pinned key is accepted, and pins the new key.
    moved = await register(client, new, "acme", signer=old)
    assert moved.status_code == 200 and moved.json()["kid"] == kid_of(new.public_key())
    assert (await register(client, old, "acme", signer=old)).status_code == 401


async def test_the_operator_can_drop_a_squatted_entry_so_the_owner_can_register(
    client: httpx.AsyncClient,
) -> None:
    squatter, owner = generate_key(), generate_key()
    assert (await register(client, squatter, "bravo", signer=None)).status_code == 200
    assert (await register(client, owner, "bravo", signer=None)).status_code == 401
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    assert (await client.delete("/hub/v1/directory/bravo")).status_code == 401
    assert (await client.delete("/hub/v1/directory/bravo", headers=headers)).status_code == 204
    assert (await client.delete("/hub/v1/directory/bravo", headers=headers)).status_code == 404
    assert (await register(client, owner, "bravo", signer=None)).status_code == 200


async def test_a_request_token_binds_method_path_body_audience_and_is_single_use(
    client: httpx.AsyncClient,
) -> None:
    key = generate_key()
    assert (await register(client, key, "acme", signer=None)).status_code == 200
    path = "/hub/v1/invitations/pending"
    ok = sign_request(key=key, account="acme", method="GET", path=path)
    assert (await call(client, "GET", path, key=key, account="acme", token=ok)).status_code == 200
    assert (await call(client, "GET", path, key=key, account="acme", token=ok)).status_code == 401
    other_path = sign_request(key=key, account="acme", method="GET", path="/hub/v1/directory")
    assert (
        await call(client, "GET", path, key=key, account="acme", token=other_path)
    ).status_code == 401
    other_body = sign_request(key=key, account="acme", method="GET", path=path, body=b"{}")
    assert (
        await call(client, "GET", path, key=key, account="acme", token=other_body)
    ).status_code == 401
    expired = sign_request(key=key, account="acme", method="GET", path=path, now=time.time() - 400)
    assert (
        await call(client, "GET", path, key=key, account="acme", token=expired)
    ).status_code == 401
    now = int(time.time())
    base = {
        "iss": "acme",
        "aud": HUB_AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        "htm": "GET",
        "htu": path,
        "bh": body_hash(b""),
    }
    kid = kid_of(key.public_key())
    bad = [
        jwt.encode(
            base | {"aud": "tix:other"},
            key,
            algorithm="EdDSA",
            headers={"typ": HUB_TYP, "kid": kid},
        ),
        jwt.encode(base, key, algorithm="EdDSA", headers={"typ": "JWT", "kid": kid}),
        jwt.encode(
            base | {"exp": now + 3600}, key, algorithm="EdDSA", headers={"typ": HUB_TYP, "kid": kid}
        ),
        jwt.encode(base, "x" * 32, algorithm="HS256", headers={"typ": HUB_TYP, "kid": kid}),
        jwt.encode(base, generate_key(), algorithm="EdDSA", headers={"typ": HUB_TYP, "kid": kid}),
        jwt.encode(
            {k: v for k, v in base.items() if k != "bh"},
            key,
            algorithm="EdDSA",
            headers={"typ": HUB_TYP, "kid": kid},
        ),
    ]
    for token in bad:
        answer = await call(client, "GET", path, key=key, account="acme", token=token)
        assert answer.status_code == 401, token
    unknown = generate_key()
    assert (await call(client, "GET", path, key=unknown, account="nobody")).status_code == 401


async def test_invitations_reach_only_their_recipient_and_must_be_the_senders_own(
    client: httpx.AsyncClient,
) -> None:
    acme, bravo, carol = generate_key(), generate_key(), generate_key()
    for key, name in ((acme, "acme"), (bravo, "bravo"), (carol, "carol")):
        assert (await register(client, key, name, signer=None)).status_code == 200
    send = "/hub/v1/invitations"
    # Carol cannot pass off an invitation of acme's, nor one signed by another key.
    forged = await call(
        client,
        "POST",
        send,
        key=carol,
        account="carol",
        body={"to": "bravo", "token": invitation_token(acme, "acme")},
    )
    assert forged.status_code == 422
    foreign_key = await call(
        client,
        "POST",
        send,
        key=acme,
        account="acme",
        body={"to": "bravo", "token": invitation_token(carol, "acme")},
    )
    assert foreign_key.status_code == 422
    expired = await call(
        client,
        "POST",
        send,
        key=acme,
        account="acme",
        body={"to": "bravo", "token": invitation_token(acme, "acme", exp_in=-120)},
    )
    assert expired.status_code == 422
    missing = await call(
        client,
        "POST",
        send,
        key=acme,
        account="acme",
        body={"to": "nobody", "token": invitation_token(acme, "acme")},
    )
    assert missing.status_code == 404
    token = invitation_token(acme, "acme")
    sent = await call(
        client, "POST", send, key=acme, account="acme", body={"to": "bravo", "token": token}
    )
    assert sent.status_code == 201
    pending = "/hub/v1/invitations/pending"
    assert (await call(client, "GET", pending, key=carol, account="carol")).json()["items"] == []
    items = (await call(client, "GET", pending, key=bravo, account="bravo")).json()["items"]
    assert [(i["from"], i["token"]) for i in items] == [("acme", token)]
    # Only its two accounts can touch it; the recipient's DELETE takes it (no longer pending).
    path = f"/hub/v1/invitations/{items[0]['id']}"
    assert (await call(client, "DELETE", path, key=carol, account="carol")).status_code == 404
    assert (await call(client, "DELETE", path, key=bravo, account="bravo")).status_code == 204
    assert (await call(client, "GET", pending, key=bravo, account="bravo")).json()["items"] == []
    assert (await call(client, "DELETE", path, key=bravo, account="bravo")).status_code == 404


async def _send(
    client: httpx.AsyncClient, key: Ed25519PrivateKey, sender: str, to: str, **token_args: Any
) -> str:
    token = invitation_token(key, sender, **token_args)
    sent = await call(
        client,
        "POST",
        "/hub/v1/invitations",
        key=key,
        account=sender,
        body={"to": to, "token": token, "note": f"from {sender}"},
    )
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


async def test_the_recipients_answer_reaches_the_sender_and_then_the_hub_forgets_it(
    client: httpx.AsyncClient,
) -> None:
    acme, bravo, carol = generate_key(), generate_key(), generate_key()
    for key, name in ((acme, "acme"), (bravo, "bravo"), (carol, "carol")):
        assert (await register(client, key, name, signer=None)).status_code == 200
    declined, accepted, taken = [await _send(client, acme, "acme", "bravo") for _ in range(3)]
    # Within the send's clock leeway, but past its expiry: the sender sees it expired.
    expired = await _send(client, acme, "acme", "carol", exp_in=-5)

    def decision(invitation_id: str) -> str:
        return f"/hub/v1/invitations/{invitation_id}/decision"

    no = {"decision": "declined", "reason": "  not our region  "}
    # Bad answers, and answers from anyone but the recipient, change nothing.
    for body in ({"decision": "maybe"}, {"decision": "declined", "reason": "x" * 501}, {}):
        bad = await call(client, "POST", decision(declined), key=bravo, account="bravo", body=body)
        assert bad.status_code == 422 and "detail" in bad.json(), body
    for key, name in ((carol, "carol"), (acme, "acme")):
        other = await call(client, "POST", decision(declined), key=key, account=name, body=no)
        assert other.status_code == 404
    answer = await call(client, "POST", decision(declined), key=bravo, account="bravo", body=no)
    assert answer.status_code == 200
    assert answer.json() == {"id": declined, "state": "declined", "reason": "not our region"}
    # The same answer again (its reply was lost) is fine; another one is a conflict.
    again = await call(client, "POST", decision(declined), key=bravo, account="bravo", body=no)
    assert again.status_code == 200
    yes = {"decision": "accepted"}
    changed = await call(client, "POST", decision(declined), key=bravo, account="bravo", body=yes)
    assert changed.status_code == 409
    ok = await call(client, "POST", decision(accepted), key=bravo, account="bravo", body=yes)
    assert ok.status_code == 200 and ok.json()["state"] == "accepted"
    path = "/hub/v1/invitations/"
    assert (
        await call(client, "DELETE", path + taken, key=bravo, account="bravo")
    ).status_code == 204
    pending = await call(client, "GET", path + "pending", key=bravo, account="bravo")
    assert pending.json()["items"] == []

    # The sender sees every state, the answer's reason, never a token; nobody else sees them.
    sent = (await call(client, "GET", path + "sent", key=acme, account="acme")).json()["items"]
    states = {item["id"]: item for item in sent}
    assert {k: v["state"] for k, v in states.items()} == {
        declined: "declined",
        accepted: "accepted",
        taken: "taken",
        expired: "expired",
    }
    assert states[declined]["reason"] == "not our region"
    assert states[declined]["to_label"] == "Bravo" and states[declined]["decided_at"]
    assert states[expired]["decided_at"] is None
    assert all("token" not in item for item in sent)
    for key, name in ((bravo, "bravo"), (carol, "carol")):
        theirs = await call(client, "GET", path + "sent", key=key, account=name)
        assert theirs.json()["items"] == []

    # The sender forgets what it has read; the recipient can no longer touch it.
    for invitation_id in (declined, accepted, taken, expired):
        gone = await call(client, "DELETE", path + invitation_id, key=acme, account="acme")
        assert gone.status_code == 204
    assert (await call(client, "GET", path + "sent", key=acme, account="acme")).json() == {
        "items": []
    }
    late = await call(client, "POST", decision(declined), key=bravo, account="bravo", body=no)
    assert late.status_code == 404

    # A pending invitation the sender withdraws no longer reaches the recipient.
    withdrawn = await _send(client, acme, "acme", "bravo")
    assert (
        await call(client, "DELETE", path + withdrawn, key=acme, account="acme")
    ).status_code == 204
    pending = await call(client, "GET", path + "pending", key=bravo, account="bravo")
    assert pending.json()["items"] == []


async def test_the_directory_is_searchable_by_registered_accounts_and_the_operator(
    client: httpx.AsyncClient,
) -> None:
    acme = generate_key()
    assert (await register(client, acme, "acme", signer=None)).status_code == 200
    found = await call(client, "GET", "/hub/v1/directory", key=acme, account="acme")
    assert [e["account_id"] for e in found.json()["items"]] == ["acme"]
    operator = await client.get(
        "/hub/v1/directory", params={"q": "ACM"}, headers={"Authorization": f"Bearer {OPERATOR}"}
    )
    assert operator.status_code == 200 and operator.json()["total"] == 1
    assert (await client.get("/hub/v1/directory")).status_code == 401
    wrong = await client.get("/hub/v1/audit/accounts", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    huge = await call(
        client,
        "PUT",
        "/hub/v1/directory/self",
        key=acme,
        account="acme",
        body={"display_name": "x" * 70_000, "public_key": public_key_b64(acme)},
    )
    assert huge.status_code == 413 and "detail" in huge.json()
    bad = await call(
        client,
        "PUT",
        "/hub/v1/directory/self",
        key=acme,
        account="acme",
        body={"display_name": "x", "public_key": public_key_b64(acme), "transport": "fax"},
    )
    assert bad.status_code == 422 and "transport" in bad.json()["detail"]


def test_the_audit_record_holds_metadata_and_never_the_body() -> None:
    body = json.dumps(
        {
            "v": 1,
            "id": "m-1",
            "type": "ticket.comment",
            "from": "acme",
            "to": "bravo",
            "link": "l-1",
            "subject": "T-1",
            "seq": 7,
            "sent_at": "2026-01-01T00:00:00.000Z",
            "body": {"text": "secret words"},
        }
    ).encode()
    event = audit.metadata(body, kind="sent", routing_key="bravo", message_id="m-1")
    assert (event.type, event.from_account, event.to_account, event.seq) == (
        "ticket.comment",
        "acme",
        "bravo",
        7,
    )
    assert event.size == len(body)
    assert "secret" not in repr(event.model_dump())
    assert "body" not in AuditEvent.model_fields


@pytest.mark.parametrize("backend", BACKENDS)
def test_audit_retention_drops_old_records_and_keeps_at_most_max_rows(
    tmp_path: Path, backend: str
) -> None:
    with database_url(backend, tmp_path) as url:
        _retention(url)


def _retention(url: str) -> None:
    from datetime import timedelta

    from sqlmodel import Session, select

    from exchange.clock import utcnow

    engine = make_engine(HubSettings(database_url=url))
    try:
        with Session(engine) as session:
            for n in range(5):
                event = audit.metadata(b"{}", kind="sent", routing_key="bravo", message_id=f"m{n}")
                event.received_at = utcnow() - timedelta(days=40 if n == 0 else 1)
                audit.record(session, event)
            session.commit()
            assert audit.prune(session, retention_days=30, max_rows=3) == 2
            session.commit()
            kept = [e.message_id for e in session.exec(select(AuditEvent)).all()]
        assert sorted(kept) == ["m2", "m3", "m4"]
    finally:
        engine.dispose()


# hub_invitation as released before answers reached the sender (no reason, decided_at, index).
_OLD_INVITATION_TABLE = """
CREATE TABLE hub_invitation (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    from_account VARCHAR(63) NOT NULL,
    to_account VARCHAR(63) NOT NULL,
    token TEXT NOT NULL,
    note VARCHAR(500) NOT NULL,
    state VARCHAR(16) NOT NULL,
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL
)"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_older_hub_database_gains_the_answer_columns_and_old_answers_are_pruned(
    tmp_path: Path, backend: str
) -> None:
    with database_url(backend, tmp_path) as url:
        _upgrade_and_prune(url)


def _upgrade_and_prune(url: str) -> None:
    from datetime import timedelta

    from sqlalchemy import create_engine, inspect, text
    from sqlmodel import Session, select

    from exchange.clock import utcnow
    from exchange.hub import invitations
    from exchange.hub.models import HubInvitation, upgrade_schema

    settings = HubSettings(database_url=url)
    old = create_engine(settings.db_url)
    ts = "DATETIME" if old.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    now = utcnow()
    with old.begin() as conn:
        conn.execute(text(_OLD_INVITATION_TABLE.format(ts=ts)))
        conn.execute(
            text(
                "INSERT INTO hub_invitation VALUES "
                "('i-old', 'acme', 'bravo', 'tok', '', 'pending', :now, :exp)"
            ),
            {"now": now, "exp": now + timedelta(days=1)},
        )
    old.dispose()

    engine = make_engine(settings)  # upgrades the schema
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("hub_invitation")}
        assert {"reason", "decided_at"} <= columns
        indexes = {i["name"] for i in inspect(engine).get_indexes("hub_invitation")}
        assert "ix_hub_invitation_from" in indexes
        assert upgrade_schema(engine) == []  # idempotent
        with Session(engine) as session:
            row = session.get(HubInvitation, "i-old")
            assert row is not None and (row.state, row.reason, row.decided_at) == (
                "pending",
                "",
                None,
            )
            long_ago = now - timedelta(days=invitations.KEEP_ANSWERED_DAYS + 1)
            for name, state, decided, expires in (
                ("answered-long-ago", "declined", long_ago, now),
                ("answered-lately", "declined", now - timedelta(days=3), now),
                ("expired-long-ago", "pending", None, long_ago),
            ):
                session.add(
                    HubInvitation(
                        id=name,
                        from_account="acme",
                        to_account="bravo",
                        token="",
                        state=state,
                        decided_at=decided,
                        expires_at=expires,
                    )
                )
            session.commit()
            assert invitations.prune(session) == 2
            session.commit()
            kept = sorted(r.id for r in session.exec(select(HubInvitation)).all())
        assert kept == ["answered-lately", "i-old"]
    finally:
        engine.dispose()
