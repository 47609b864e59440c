"""Outbox, inbox and rejected-message tables: the only place domain and transport meet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow


class OutboxMessage(SQLModel, table=True):
    """A signed envelope: waiting (``pending``), gone (``sent``) or given up (``failed``)."""

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=36)
    account_id: str = Field(index=True, max_length=63)
    to_account: str = Field(index=True, max_length=63)
    type: str = Field(max_length=40)
    subject: str = Field(max_length=36)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default="pending", index=True, max_length=10)
    tries: int = 0
    next_try_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # W3C trace context sent as the AMQP ``traceparent`` header (account.observability.tracing).
    traceparent: str | None = Field(default=None, max_length=55)


class InboxMessage(SQLModel, table=True):
    """A message id this node has processed, written in the same transaction as its effect."""

    __table_args__ = (UniqueConstraint("account_id", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(max_length=63)
    message_id: str = Field(max_length=36)
    type: str = Field(max_length=40)
    from_account: str = Field(max_length=63)
    subject: str = Field(max_length=36)
    seq: int
    outcome: str = Field(max_length=20)  # applied | stale
    received_at: datetime = Field(default_factory=utcnow)


class RejectedInbound(SQLModel, table=True):
    """An inbound message that failed a receiver check, kept with its reason for the operator."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: str | None = Field(default=None, index=True, max_length=63)
    message_id: str | None = Field(default=None, max_length=100)
    from_account: str | None = Field(default=None, max_length=100)
    type: str | None = Field(default=None, max_length=100)
    reason: str = Field(index=True, max_length=40)
    detail: str = Field(default="", max_length=1000)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = 0
    received_at: datetime = Field(default_factory=utcnow)
