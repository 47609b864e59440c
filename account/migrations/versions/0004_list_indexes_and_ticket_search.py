"""List indexes and ticket search

The ticket list's filters read indexes: the partner filter (account_id, peer_account,
ticket_id) of the delegations, status and SLA state (account_id, …, id) of the tickets. The
search (``q=``) gets a full-text index: on SQLite an FTS5 trigram table with the ticket table
as its content, kept in step by triggers and filled here from the existing tickets; on
PostgreSQL a pg_trgm GIN index (the extension is created if missing: PostgreSQL 13+ lets a
database owner do that). The same SQL as ``account/tickets/search.py`` runs for a new
database (``tests/integration/test_ticket_search.py`` checks they agree).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:42:11.966708
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_SEARCH = (
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
    "INSERT INTO ticket_search(ticket_search) VALUES ('rebuild')",
)
POSTGRES_SEARCH = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_ticket_search_trgm ON ticket USING gin "
    "(number gin_trgm_ops, title gin_trgm_ops, description gin_trgm_ops)",
)


def upgrade() -> None:
    with op.batch_alter_table("delegation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delegation_account_peer", ["account_id", "peer_account", "ticket_id"], unique=False
        )

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_account_sla", ["account_id", "sla_state", "id"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_account_status", ["account_id", "status", "id"], unique=False
        )

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH if dialect == "sqlite" else POSTGRES_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS ticket_search_{name}")
        op.execute("DROP TABLE IF EXISTS ticket_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_ticket_search_trgm")  # pg_trgm stays installed

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_account_status")
        batch_op.drop_index("ix_ticket_account_sla")

    with op.batch_alter_table("delegation", schema=None) as batch_op:
        batch_op.drop_index("ix_delegation_account_peer")
