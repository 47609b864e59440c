"""Ticket search (``q=``): the tickets whose number, title or description contains the text.

What a user gets, on both databases: a substring match (``42`` finds ``ACME-421``; ``%`` and
``_`` are plain characters), case-insensitive by each letter's lower-case form (``Ä`` = ``ä``,
``Д`` = ``д``; ``ß`` does not match ``ss``), and the number, title and description are searched
one by one (a match does not span two of them). Before this index it was the same ``ILIKE
'%…%'`` on both databases, a scan of every ticket, and SQLite folded only ASCII letters.

How it is answered:

* **SQLite**: ``ticket_search``, an FTS5 table with the trigram tokenizer over the three columns
  and the ``ticket`` table as its external content (the text is not stored twice), kept in step
  by three triggers on ``ticket``. A query of three characters or more is an FTS5 phrase, which
  with trigrams is exactly "contains this substring" (FTS5 folds case by Unicode); one or two
  characters have no trigram, so they are a scan with ``LIKE`` (which folds ASCII letters),
  one pattern per upper/lower-case spelling of the other letters.
* **PostgreSQL**: ``ILIKE`` on the three columns, served by a pg_trgm GIN index over them
  (PostgreSQL lower-cases by the database's ``LC_CTYPE``: use a UTF-8 locale, as ``initdb`` does
  by default). One or two characters: the planner scans.

The objects are created by ``create_all`` (the ``after_create`` hook of the ticket table, so a
new database has them) and by migration 0004; they are not SQLAlchemy metadata, so the schema
comparison leaves them out (``account.migrate.include_object``) and
``tests/integration/test_ticket_search.py`` checks both ways build the same ones.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, column, event, literal_column, or_, select, table
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from account.tickets.models import Ticket

FTS_TABLE = "ticket_search"
TRGM_INDEX = "ix_ticket_search_trgm"
MIN_INDEXED = 3  # trigrams: shorter text has none

# Kept identical to migration 0004 (tests/integration/test_ticket_search.py compares them).
SQLITE_DDL = (
    "CREATE VIRTUAL TABLE ticket_search USING fts5(number, title, description, "
    "content='ticket', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER ticket_search_insert AFTER INSERT ON ticket BEGIN "
    "INSERT INTO ticket_search(rowid, number, title, description) "
    "VALUES (new.id, new.number, new.title, new.description); END",
    "CREATE TRIGGER ticket_search_delete AFTER DELETE ON ticket BEGIN "
    "INSERT INTO ticket_search(ticket_search, rowid, number, title, description) "
    "VALUES ('delete', old.id, old.number, old.title, old.description); END",
    "CREATE TRIGGER ticket_search_update AFTER UPDATE OF number, title, description ON ticket "
    "BEGIN INSERT INTO ticket_search(ticket_search, rowid, number, title, description) "
    "VALUES ('delete', old.id, old.number, old.title, old.description); "
    "INSERT INTO ticket_search(rowid, number, title, description) "
    "VALUES (new.id, new.number, new.title, new.description); END",
)
POSTGRES_DDL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_ticket_search_trgm ON ticket USING gin "
    "(number gin_trgm_ops, title gin_trgm_ops, description gin_trgm_ops)",
)
# A ticket table made again (a test dropping every table) must not meet a stale index.
SQLITE_DROP = ("DROP TABLE IF EXISTS ticket_search",)


def _install(table: Table) -> None:
    def ddl(statement: str, dialect: str) -> DDL:
        return DDL(statement).execute_if(dialect=dialect)  # type: ignore[no-untyped-call]

    for statement in SQLITE_DROP + SQLITE_DDL:
        event.listen(table, "after_create", ddl(statement, "sqlite"))
    for statement in POSTGRES_DDL:
        event.listen(table, "after_create", ddl(statement, "postgresql"))
    for statement in SQLITE_DROP:
        event.listen(table, "after_drop", ddl(statement, "sqlite"))


_install(Ticket.__table__)  # type: ignore[attr-defined]


def spellings(text: str) -> list[str]:
    """The ways of writing ``text`` with the same lower case, ASCII letters left as they are
    (SQLite's LIKE folds those), lower case first (the likeliest in text, so OR stops early):
    ``"ён"`` gives ён, ёН, Ён and ЁН; ``"k-"`` gives k-."""
    out = [""]
    for char in text:
        if char.isascii():
            out = [start + char for start in out]
            continue
        lower = char.lower()
        forms = (lower, char, char.upper(), char.title(), lower.upper(), lower.title())
        same = [f for f in dict.fromkeys(forms) if len(f) == 1 and f.lower() == lower]
        out = [start + form for start in out for form in same]
    return out


def condition(dialect: str, q: str) -> ColumnElement[bool]:
    """The ``WHERE`` clause selecting the tickets that match ``q`` (not empty)."""
    if dialect == "sqlite":
        if len(q) >= MIN_INDEXED:
            phrase = '"' + q.replace('"', '""') + '"'
            fts = table(FTS_TABLE, column("rowid"))
            matching = select(fts.c.rowid).where(literal_column(FTS_TABLE).op("MATCH")(phrase))
            return col(Ticket.id).in_(matching)
        # One or two characters: no trigram to look up, so a scan. SQLite's LIKE folds ASCII
        # letters only: one pattern per upper/lower-case spelling of the other letters.
        columns = (col(Ticket.number), col(Ticket.title), col(Ticket.description))
        return or_(
            *(
                column.like(_pattern(spelling), escape="\\")
                for spelling in spellings(q)
                for column in columns
            )
        )
    pattern = _pattern(q)
    return or_(
        col(Ticket.number).ilike(pattern, escape="\\"),
        col(Ticket.title).ilike(pattern, escape="\\"),
        col(Ticket.description).ilike(pattern, escape="\\"),
    )


def _pattern(q: str) -> str:
    """``%q%`` for LIKE with ``\\`` as the escape: ``%``, ``_`` and ``\\`` are plain text."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
