"""The hub's own tables, on their own SQLAlchemy registry (never in a node's metadata)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
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
    """An invitation token on its way from one account's node to another's."""

    __tablename__ = "hub_invitation"
    __table_args__ = (Index("ix_hub_invitation_to", "to_account", "state"),)

    id: str = Field(primary_key=True, max_length=36)
    from_account: str = Field(max_length=63)
    to_account: str = Field(max_length=63)
    token: str = Field(sa_column=Column(Text, nullable=False))
    note: str = Field(default="", max_length=500)
    state: str = Field(default="pending", max_length=16)  # pending | taken
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


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
