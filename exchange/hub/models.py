"""The hub's own tables, on their own SQLAlchemy registry (never in a node's metadata)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow

hub_registry = registry()


class HubModel(SQLModel, registry=hub_registry):
    """Base of the hub's tables; ``hub_registry.metadata`` holds exactly these."""


class DirectoryEntry(HubModel, table=True):
    """An account on the network as its node registered it; the first key is pinned."""

    __tablename__ = "hub_directory"

    account_id: str = Field(primary_key=True, max_length=63)
    display_name: str = Field(max_length=200)
    public_key: str = Field(max_length=64)
    kid: str = Field(max_length=16)
    transport: str = Field(max_length=16)
    api_url: str | None = Field(default=None, max_length=500)
    registered_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class HubInvitation(HubModel, table=True):
    """An invitation token on its way from one account's node to another's, and then the
    recipient's answer on its way back to the sender's node (the token is dropped once
    answered; the row goes when the sender's node has taken the answer, or after
    ``invitations.KEEP_ANSWERED_DAYS``)."""

    __tablename__ = "hub_invitation"
    __table_args__ = (
        Index("ix_hub_invitation_to", "to_account", "state"),
        Index("ix_hub_invitation_from", "from_account", "state"),
    )

    id: str = Field(primary_key=True, max_length=36)
    from_account: str = Field(max_length=63)
    to_account: str = Field(max_length=63)
    token: str = Field(sa_column=Column(Text, nullable=False))
    note: str = Field(default="", max_length=500)
    # pending | accepted | declined | taken (dismissed by a node that says neither)
    state: str = Field(default="pending", max_length=16)
    reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    decided_at: datetime | None = None


class RequestNonce(HubModel, table=True):
    """A signed request's ``jti``, kept until it expires so it cannot be replayed."""

    __tablename__ = "hub_request_nonce"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(index=True)


class AuditEvent(HubModel, table=True):
    """Metadata of one tapped envelope (kind ``sent``) or dead letter (kind ``dead``); no body."""

    __tablename__ = "hub_audit_event"
    __table_args__ = (
        Index("ix_hub_audit_from", "from_account", "kind"),
        Index("ix_hub_audit_to", "to_account", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8)
    message_id: str = Field(max_length=64, index=True)
    type: str = Field(max_length=64)
    from_account: str = Field(max_length=63)
    to_account: str = Field(max_length=63)
    link: str = Field(default="", max_length=64)
    subject: str = Field(default="", max_length=200)
    seq: int | None = None
    sent_at: str = Field(default="", max_length=40)
    size: int
    reason: str = Field(default="", max_length=200)
    received_at: datetime = Field(default_factory=utcnow, index=True)


# Columns added to a table after its first release: ``create_all`` makes new tables only, so
# ``upgrade_schema`` adds these to a hub database made by an older version.
_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "hub_invitation": {
        "reason": "VARCHAR(500) NOT NULL DEFAULT ''",
        "decided_at": "{timestamp}",
    },
}
_ADDED_INDEXES = {"ix_hub_invitation_from": ("hub_invitation", ("from_account", "state"))}


def upgrade_schema(engine: Engine) -> list[str]:
    """Create missing tables, then add the columns and indexes newer than the database
    (idempotent); the names of what was added."""
    hub_registry.metadata.create_all(engine)
    added: list[str] = []
    inspector = inspect(engine)
    sqlite = engine.dialect.name == "sqlite"
    timestamp = "DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE"
    with engine.begin() as conn:
        for table, columns in _ADDED_COLUMNS.items():
            have = {c["name"] for c in inspector.get_columns(table)}
            for name, ddl in columns.items():
                if name not in have:
                    ddl = ddl.format(timestamp=timestamp)
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))
                    added.append(f"{table}.{name}")
        for index, (table, cols) in _ADDED_INDEXES.items():
            if index not in {i["name"] for i in inspector.get_indexes(table)}:
                conn.execute(text(f"CREATE INDEX {index} ON {table} ({', '.join(cols)})"))
                added.append(index)
    return added
