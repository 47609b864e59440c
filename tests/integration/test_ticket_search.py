# ruff: noqa: RUF001  (Cyrillic and Greek test texts)
"""The ticket list's search (``q=``) and partner filter, answered from indexes, on both databases.

- The search finds exactly what "the text is a substring of the number, title or description,
  case-insensitively" finds (a Python reference over the same rows): ``%``, ``_``, ``\\`` and
  ``"`` are plain characters; Cyrillic and German letters fold; one or two characters work too.
  It follows edits (the SQLite index is kept by triggers) and the contact's scope.
- The partner filter gives the tickets delegated to that partner (each once), newest first.
- A list is two statements (count and page) whatever the filters, and the search's query can
  use its index (the plan names it).
- A database built by ``create_all`` and one built by the migrations have the same search
  objects (``account/tickets/search.py`` and migration 0004 hold the same SQL).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from account import migrate
from account.db import create_tables, make_engine
from account.delegations.models import Delegation
from account.links.models import Link
from account.tickets import search
from account.tickets import service as ticket_service
from account.tickets.models import Ticket, TicketCreate, TicketUpdate
from tests.support.db import BACKENDS, postgres_database, sqlite_url

ADMIN: Any = SimpleNamespace(role="admin", username="admin", organisation=None)

TEXTS = [
    ("Printer jams on floor 3", "Paper feed; 100% reproducible"),
    ("ATM 0417 out of service", "Card reader under_score fault"),
    ("Принтер не печатает", "Картридж ПУСТОЙ, замена нужна"),
    ("Größe der Tür falsch", "Maße prüfen: ÄÖÜ äöü"),
    ('Quote "this" please', "back\\slash and [brackets] and *stars*"),
    ("Router reboot loop", ""),
    ("router REBOOT loop (again)", "see ticket 1"),
    ("Ελληνικά ΑΒΓ", "δοκιμή"),
]
QUERIES = [
    "printer", "PRINTER", "Printer jams", "100%", "%", "_", "under_score", "r_s", "\\",
    "back\\slash", '"', '"this"', "[brackets]", "*", "принтер", "ПРИНТЕР", "картридж пустой",
    "ПУСТОЙ", "größe", "GRÖSSE", "GRÖßE", "äöü", "ÄÖÜ", "maße", "αβγ", "ΕΛΛΗΝΙΚΆ", "reboot",
    "o", "ö", "Ж", "р", "at", "loop (again)", "  ", "no such text anywhere", "-1", "e 1",
]  # fmt: skip


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["create_all", "migrations"])
def engine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A node database built by ``create_all`` (tests, ``tix node init``) or by the revisions."""

    def built(url: str) -> Engine:
        if request.param == "migrations":
            migrate.upgrade(url)
            made = make_engine(url)
        else:
            made = make_engine(url)
            create_tables(made)
        return made

    if backend == "sqlite":
        made = built(sqlite_url(tmp_path))
        yield made
        made.dispose()
    else:
        with postgres_database("tix_search") as url:
            made = built(url)
            yield made
            made.dispose()


def _account() -> str:
    return f"srch-{uuid.uuid4().hex[:8]}"


def _fill(session: Session, account: str) -> list[Ticket]:
    made = []
    for title, description in TEXTS:
        ticket_in = TicketCreate(title=title, description=description, organisation="org-a")
        made.append(ticket_service.create(session=session, account_id=account, ticket_in=ticket_in))
    session.commit()
    return made


def _expected(tickets: list[Ticket], q: str) -> list[str]:
    needle = q.lower()
    hits = [
        t
        for t in tickets
        if any(needle in (v or "").lower() for v in (t.number, t.title, t.description))
    ]
    return [t.number for t in sorted(hits, key=lambda t: t.id or 0, reverse=True)]


def _search(session: Session, account: str, q: str, user: Any = ADMIN) -> tuple[list[str], int]:
    rows, total = ticket_service.list_visible(
        session=session, account_id=account, user=user, q=q, limit=200
    )
    return [t.number for t in rows], total


def test_search_finds_exactly_the_substring_matches(engine: Engine) -> None:
    account, other = _account(), _account()
    with Session(engine, expire_on_commit=False) as session:
        tickets = _fill(session, account)
        _fill(session, other)  # the same texts in another account: never shown
        for q in QUERIES + [t.number for t in tickets[:2]] + [tickets[0].number.lower()]:
            expected = _expected(tickets, q)
            assert _search(session, account, q) == (expected, len(expected)), q
        assert _search(session, account, "printer")[1] == 1
        assert _search(session, account, "принтер")[1] == 1  # Cyrillic folds on both
        assert _search(session, account, "GRÖSSE") == ([], 0)  # ß is not ss

        # Edits are found at once and the old text is gone (SQLite: the update trigger).
        first = tickets[0]
        ticket_service.update(
            session=session,
            ticket=first,
            update_in=TicketUpdate(title="Scanner offline", addendum="Ещё одна ЗАМЕТКА"),
            actor=ADMIN,
        )
        session.commit()
        assert _search(session, account, "printer jams") == ([], 0)
        assert _search(session, account, "scanner")[0] == [first.number]
        assert _search(session, account, "ещё одна заметка")[0] == [first.number]
        # Paging: the total counts every match, the page holds `limit`.
        rows, total = ticket_service.list_visible(
            session=session, account_id=account, user=ADMIN, q="r", limit=2, offset=1
        )
        expected = _expected(tickets, "r")
        assert ([t.number for t in rows], total) == (expected[1:3], len(expected))
        # A contact sees the matches of their own organisation only.
        contact = SimpleNamespace(role="contact", username="c", organisation="org-b")
        assert _search(session, account, "printer", contact) == ([], 0)
        session.connection().execute(
            text("UPDATE ticket SET organisation = 'org-b' WHERE id = :id"), {"id": first.id}
        )
        assert _search(session, account, "scanner", contact) == ([first.number], 1)


def test_the_partner_filter_lists_each_delegated_ticket_once(engine: Engine) -> None:
    account = _account()
    with Session(engine, expire_on_commit=False) as session:
        tickets = _fill(session, account)
        links = {peer: str(uuid.uuid4()) for peer in ("p-north", "p-south", "p-%_", "p-кириллица")}
        session.connection().execute(
            insert(Link),
            [
                {
                    "id": link_id,
                    "account_id": account,
                    "peer_account": peer,
                    "direction": "downstream",
                    "peer_public_key": "k" * 43,
                    "peer_kid": "0123456789abcdef",
                    "contract": {},
                }
                for peer, link_id in links.items()
            ],
        )
        # ticket index -> partners (the first went to p-north twice: declined, offered again).
        plan = {0: ["p-north", "p-north"], 1: ["p-south"], 2: ["p-north", "p-south"], 4: ["p-%_"]}
        plan |= {5: ["p-кириллица"], 7: ["p-north"]}
        rows: list[dict[str, Any]] = []
        for index, peers in plan.items():
            for peer in peers:
                rows.append(
                    {
                        "delegation_id": str(uuid.uuid4()),
                        "account_id": account,
                        "role": "out",
                        "link_id": links[peer],
                        "peer_account": peer,
                        "ticket_id": tickets[index].id,
                        "state": "offered",
                        "subtree": [],
                        "sla_holds": [],
                        "sla_reworks": [],
                    }
                )
        session.connection().execute(insert(Delegation), rows)
        session.commit()
        for peer in (*links, "p-", "p-%", "nobody"):
            expected = [tickets[i].number for i in sorted(plan, reverse=True) if peer in plan[i]]
            got, total = ticket_service.list_visible(
                session=session, account_id=account, user=ADMIN, partner=peer
            )
            assert ([t.number for t in got], total) == (expected, len(expected)), peer
        # Combined with the search and a status.
        got, total = ticket_service.list_visible(
            session=session, account_id=account, user=ADMIN, partner="p-north", q="ПРИНТЕР"
        )
        assert ([t.number for t in got], total) == ([tickets[2].number], 1)
        got, total = ticket_service.list_visible(
            session=session, account_id=account, user=ADMIN, partner="p-north", status=["closed"]
        )
        assert (got, total) == ([], 0)


def test_a_list_is_two_statements_and_the_search_can_use_its_index(engine: Engine) -> None:
    account = _account()
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("BEGIN", "SET")):
            statements.append(statement)

    with Session(engine, expire_on_commit=False) as session:
        _fill(session, account)
        event.listen(engine, "before_cursor_execute", count)
        try:
            for filters in (
                {},
                {"q": "printer"},
                {"q": "p"},
                {"partner": "x", "q": "принтер", "status": ["new"], "sla": "breached"},
            ):
                statements.clear()
                ticket_service.list_visible(
                    session=session, account_id=account, user=ADMIN, **filters
                )
                assert len(statements) == 2, (filters, statements)
        finally:
            event.remove(engine, "before_cursor_execute", count)

        query = select(Ticket.id).where(search.condition(engine.dialect.name, "prin"))
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        if engine.dialect.name == "postgresql":
            session.connection().execute(text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN"
        plan = session.connection().exec_driver_sql(f"{explain} {compiled}").all()
        shown = " ".join(str(row[-1]) for row in plan)
        wanted = "VIRTUAL TABLE" if engine.dialect.name == "sqlite" else "ix_ticket_search_trgm"
        assert wanted in shown, shown


def _search_objects(url: str) -> list[tuple[str, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                found = conn.execute(
                    text(
                        "SELECT type, name, sql FROM sqlite_master "
                        "WHERE name LIKE 'ticket_search%' ORDER BY name"
                    )
                )
                return [(str(a), str(b), " ".join(str(c).split())) for a, b, c in found]
            found = conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ticket' "
                    "UNION ALL SELECT extname, '' FROM pg_extension ORDER BY 1"
                )
            )
            return [(str(a), str(b)) for a, b in found]
    finally:
        engine.dispose()


def test_create_all_and_the_migrations_build_the_same_search_objects(
    backend: str, tmp_path: Path
) -> None:
    def both(first: str, second: str) -> None:
        migrate.upgrade(first)
        engine = make_engine(second)
        create_tables(engine)
        engine.dispose()
        made_by_migrations, made_by_create_all = _search_objects(first), _search_objects(second)
        assert made_by_migrations == made_by_create_all
        names = " ".join(row[0] + row[1] for row in made_by_migrations)
        assert ("ticket_search_update" if backend == "sqlite" else "pg_trgm") in names

    if backend == "sqlite":
        both(sqlite_url(tmp_path, "a.db"), sqlite_url(tmp_path, "b.db"))
    else:
        with postgres_database("tix_search") as first, postgres_database("tix_search") as second:
            both(first, second)
