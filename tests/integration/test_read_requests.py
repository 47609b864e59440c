"""GET and HEAD requests read from reader connections, one snapshot each, and cannot write.

``account.deps.get_session`` gives safe methods ``account.db.read_session``: on SQLite a pool
of ``query_only`` connections beside the node's one write connection, under a deferred
``BEGIN``; on PostgreSQL a ``REPEATABLE READ, READ ONLY`` transaction. Before, every request
took the write connection, so a page waited for whatever transaction held it (an inbox apply
under ``BEGIN IMMEDIATE``) and held it up in turn (issue F7). Real node apps on real databases,
both backends (``engine``: a SQLite file, then a PostgreSQL database).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import select

from account import security
from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import REQUEST_READERS, read_session, request_reader_for, session_scope
from account.deps import SessionDep, WriteSessionDep
from account.tickets import service as ticket_service
from account.tickets.models import CommentCreate, Ticket, TicketCreate
from account.users.models import User
from account.web.session import issue_session, session_cookie
from exchange.signing import generate_key
from tests.support.db import clear_tables

SECRET = b"r" * 48
TMF = "/tmf-api/troubleTicket/v5/troubleTicket"
# Generous: a request that waits for the held write connection fails at the pool's timeout,
# set short below, well before this.
BOUND = 45.0


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    with session_scope(engine) as session:
        session.add(
            User(
                username="disp",
                password_hash=security.hash_password("disp-pw-123"),
                role="dispatcher",
                full_name="Dispatcher",
            )
        )
    yield NodeContext(
        settings=Settings(account_id="acme", data_dir=tmp_path),
        engine=engine,
        identity=Identity(account_id="acme", label="ACME", key=generate_key()),
        secret=SECRET,
    )
    clear_tables(engine)


def _app(ctx: NodeContext) -> FastAPI:
    app = create_app(ctx)

    @app.api_route("/probe/write", methods=["GET", "POST"])
    def write_probe(session: SessionDep) -> dict[str, str]:
        """A view that writes whatever the method: only the POST may succeed."""
        session.exec(text("UPDATE ticket SET title = 'written by the probe'"))  # type: ignore[call-overload]
        session.commit()
        return {"wrote": "yes"}

    @app.get("/probe/write-explicitly")
    def explicit_write_probe(session: WriteSessionDep) -> dict[str, str]:
        """A GET that says it writes gets the write session."""
        session.exec(text("UPDATE ticket SET title = 'written on purpose'"))  # type: ignore[call-overload]
        session.commit()
        return {"wrote": "yes"}

    return app


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    token = security.create_access_token(
        username="disp", role="dispatcher", secret=SECRET, account_id="acme", minutes=30
    )
    with session_scope(ctx.engine) as session:
        user = session.exec(select(User).where(User.username == "disp")).one()
        cookie = issue_session(user=user, secret=SECRET, account_id="acme", minutes=30)
    transport = httpx.ASGITransport(app=_app(ctx), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://acme.test",
        headers={"Authorization": f"Bearer {token}"},
        cookies={session_cookie("acme"): cookie},
        timeout=BOUND,
    ) as http:
        yield http


def _ticket(engine: Engine, title: str) -> str:
    with session_scope(engine) as session:
        return ticket_service.create(
            session=session, account_id="acme", ticket_in=TicketCreate(title=title)
        ).number


def _title(engine: Engine, number: str) -> str:
    with session_scope(engine) as session:
        return session.exec(select(Ticket.title).where(Ticket.number == number)).one()


@pytest.fixture
def short_write_pool_timeout(engine: Engine) -> Iterator[None]:
    """A request queued for the write connection fails in 3 s (a 500) instead of 60 s."""
    pool: Any = engine.pool
    before = pool._timeout
    pool._timeout = 3
    yield
    pool._timeout = before


async def test_gets_are_served_while_a_transaction_holds_the_write_connection(
    ctx: NodeContext, client: httpx.AsyncClient, short_write_pool_timeout: None
) -> None:
    number = _ticket(ctx.engine, "Printer on fire")
    paths = [
        "/api/v1/tickets",
        f"/api/v1/tickets/{number}",
        f"/api/v1/tickets/{number}/timeline",
        f"{TMF}/{number}",
        "/ui/tickets",
        f"/ui/tickets/{number}",
        f"/ui/tickets/{number}/chain",
    ]
    # Hold the write connection (on SQLite the pool's only one, and the write lock under
    # BEGIN IMMEDIATE) in an open transaction with an uncommitted change, as an inbox apply
    # does, for as long as the requests run: twice as many as there are readers.
    with ctx.engine.connect() as held:
        transaction = held.begin()
        try:
            held.execute(text("UPDATE ticket SET title = 'not committed yet'"))
            responses = await asyncio.wait_for(
                asyncio.gather(*(client.get(path) for path in paths * 2), client.get("/metrics")),
                BOUND,
            )
        finally:
            transaction.rollback()
    for path, response in zip([*paths * 2, "/metrics"], responses, strict=True):
        assert response.status_code == 200, (path, response.text[:300])
        assert "not committed yet" not in response.text, path
    for path, response in zip(paths, responses, strict=False):
        if not path.endswith(("/timeline", "/chain")):  # those show no title
            assert "Printer on fire" in response.text, path
    assert "tix_outbox_messages" in responses[-1].text
    assert _title(ctx.engine, number) == "Printer on fire"  # the held transaction rolled back


async def test_a_get_cannot_write_unless_it_asks_for_the_write_session(
    ctx: NodeContext, client: httpx.AsyncClient
) -> None:
    number = _ticket(ctx.engine, "Unchanged")
    refused = await client.get("/probe/write")
    assert refused.status_code == 500
    assert _title(ctx.engine, number) == "Unchanged"
    written = await client.post("/probe/write")
    assert (written.status_code, written.json()) == (200, {"wrote": "yes"})
    assert _title(ctx.engine, number) == "written by the probe"
    explicit = await client.get("/probe/write-explicitly")
    assert (explicit.status_code, explicit.json()) == (200, {"wrote": "yes"})
    assert _title(ctx.engine, number) == "written on purpose"


async def test_a_ticket_page_reads_one_snapshot(
    ctx: NodeContext, client: httpx.AsyncClient
) -> None:
    """A comment committed while the page is between its queries is not on that page."""
    number = _ticket(ctx.engine, "Router down")
    fired: list[str] = []

    def commit_a_comment_after_the_ticket_is_read(
        conn: Any, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        if fired or not statement.lstrip().upper().startswith("SELECT"):
            return
        if "FROM ticket" not in statement or "ticket.number =" not in statement:
            return
        fired.append(statement)
        with session_scope(ctx.engine) as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            ticket_service.add_comment(
                session=session,
                ticket=ticket,
                comment_in=CommentCreate(body="Written in between", visibility="public"),
                author="disp",
            )

    target = request_reader_for(ctx.engine)  # PostgreSQL: the engine itself
    event.listen(target, "after_cursor_execute", commit_a_comment_after_the_ticket_is_read)
    try:
        page = await client.get(f"/ui/tickets/{number}")
    finally:
        event.remove(target, "after_cursor_execute", commit_a_comment_after_the_ticket_is_read)
    assert fired, "the page never read the ticket by its number"
    assert page.status_code == 200
    assert "Router down" in page.text
    assert "Written in between" not in page.text
    again = await client.get(f"/ui/tickets/{number}")
    assert "Written in between" in again.text  # committed: the next page's snapshot has it


def test_several_readers_hold_snapshots_while_the_writer_commits(ctx: NodeContext) -> None:
    """Readers (as many as the pool holds) keep their snapshots open at once; the writer
    commits past them without waiting, and a reader opened after sees the commit."""
    number = _ticket(ctx.engine, "Before")
    readers = [read_session(ctx.engine) for _ in range(REQUEST_READERS)]
    try:
        for session in readers:  # each checks out its own connection and starts its snapshot
            assert session.exec(select(Ticket.title).where(Ticket.number == number)).one() == (
                "Before"
            )
        with session_scope(ctx.engine) as session:
            session.exec(text("UPDATE ticket SET title = 'After'"))  # type: ignore[call-overload]
        for session in readers:
            assert session.exec(select(Ticket.title).where(Ticket.number == number)).one() == (
                "Before"
            )
            session.commit()  # ends the snapshot
            assert session.exec(select(Ticket.title).where(Ticket.number == number)).one() == (
                "After"
            )
    finally:
        for session in readers:
            session.close()
    with read_session(ctx.engine) as session:
        assert session.exec(select(Ticket.title).where(Ticket.number == number)).one() == "After"
