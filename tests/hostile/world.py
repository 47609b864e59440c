"""The node under attack over HTTP: one in-process app, its users and tickets, and a fingerprint.

``world(url, directory)`` builds a node (``account.app.create_app``) on a database URL with an
admin, a dispatcher, two contacts of two organisations (Bank North, Bank South), one ticket per
organisation with a comment and an attachment, and a second node's invitation to accept. Small
body and attachment limits keep the oversize cases cheap.

``fingerprint()`` is the hash of every row of every table (in primary-key order) plus every
file under the node's data directory: a refused request must leave it unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import create_tables, make_engine, session_scope
from account.links import service as link_service
from account.links.models import InvitationCreate
from account.users import service as user_service
from account.users.models import UserCreate
from exchange.signing import generate_key

__all__ = ["MAX_BODY", "MAX_UPLOAD", "NODE", "PASSWORD", "World", "world"]

NODE = "acme"
PASSWORD = "password-123"
MAX_BODY = 64 * 1024
MAX_UPLOAD = 32 * 1024
SECRET = b"h" * 48
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class World:
    """The node, its HTTP client and what the cases need to aim at."""

    ctx: NodeContext
    client: httpx.AsyncClient
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    tickets: dict[str, str] = field(default_factory=dict)  # organisation -> ticket number
    attachments: dict[str, str] = field(default_factory=dict)  # organisation -> attachment id
    invitation: str = ""  # a partner's invitation token, unused
    used_invitation: str = ""  # another one, accepted while seeding
    partner_key: Any = None

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    def auth(self, user: str) -> dict[str, str]:
        return self.tokens[user]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        with self.engine.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                digest.update(table.name.encode())
                for row in conn.execute(select(table).order_by(*order)):
                    digest.update(repr(tuple(row)).encode("utf-8", "backslashreplace"))
        for path in sorted(self.ctx.settings.data_dir.rglob("*")):
            if path.is_file() and not path.name.endswith((".db", ".db-wal", ".db-shm")):
                digest.update(f"{path}:{path.stat().st_size}".encode())
        return digest.hexdigest()

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in SQLModel.metadata.sorted_tables
            }

    async def serving(self) -> bool:
        """Whether a normal request succeeds: the admin lists tickets."""
        response = await self.client.get("/api/v1/tickets", headers=self.auth("root"))
        return response.status_code == 200 and "items" in response.json()


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        create_tables(engine)
        yield engine
    finally:
        engine.dispose()


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@asynccontextmanager
async def world(url: str, directory: Path) -> AsyncIterator[World]:
    """A seeded node on ``url`` with files under ``directory`` (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    with _engine(url) as engine:
        with session_scope(engine) as session:
            for name, role, org in (
                ("root", "admin", None),
                ("disp", "dispatcher", None),
                ("alice", "contact", "Bank North"),
                ("bob", "contact", "Bank South"),
                ("carol", "contact", None),  # a contact whose admin forgot the organisation
            ):
                user_service.create(
                    session=session,
                    user_in=UserCreate(
                        username=name, password=PASSWORD, role=role, organisation=org
                    ),
                )
        settings = Settings(
            account_id=NODE,
            data_dir=directory,
            max_body_bytes=MAX_BODY,
            attachment_max_bytes=MAX_UPLOAD,
        )
        ctx = NodeContext(
            settings=settings,
            engine=engine,
            identity=Identity(account_id=NODE, label="ACME", key=generate_key()),
            secret=SECRET,
        )
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as client:
            w = World(ctx=ctx, client=client)
            for user in ("root", "disp", "alice", "bob", "carol"):
                w.tokens[user] = await _login(client, user)
            for org, contact in (("Bank North", "alice"), ("Bank South", "bob")):
                made = await client.post(
                    "/api/v1/tickets",
                    json={"title": f"ATM of {org} down", "organisation": org},
                    headers=w.auth("disp"),
                )
                assert made.status_code == 201, made.text
                number = made.json()["number"]
                w.tickets[org] = number
                said = await client.post(
                    f"/api/v1/tickets/{number}/comments",
                    json={"body": f"{contact} is on site", "visibility": "public"},
                    headers=w.auth("disp"),
                )
                assert said.status_code == 201, said.text
                sent = await client.post(
                    f"/api/v1/tickets/{number}/attachments",
                    files={"file": ("photo.png", PNG, "image/png")},
                    data={"visibility": "public"},
                    headers=w.auth("disp"),
                )
                assert sent.status_code == 201, sent.text
                w.attachments[org] = sent.json()["id"]
            w.partner_key = generate_key()
            partner = Identity(account_id="beta", label="Beta", key=w.partner_key)
            with _engine("sqlite://") as partner_engine, session_scope(partner_engine) as s:
                _, w.invitation = link_service.create_invitation(
                    session=s, identity=partner, invitation_in=InvitationCreate()
                )
            other = Identity(account_id="gamma", label="Gamma", key=generate_key())
            with _engine("sqlite://") as other_engine, session_scope(other_engine) as s:
                _, w.used_invitation = link_service.create_invitation(
                    session=s, identity=other, invitation_in=InvitationCreate()
                )
            accepted = await client.post(
                "/api/v1/links/accept", json={"token": w.used_invitation}, headers=w.auth("root")
            )
            assert accepted.status_code == 201, accepted.text
            yield w
