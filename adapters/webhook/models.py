"""Tables of the webhook adapter: hosted participants, the outbound queue, seen signatures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from adapters.hosting.participants import HostedParticipant
from exchange.clock import utcnow


class WebhookParticipant(HostedParticipant, table=True):
    """A help desk hosted by this adapter: one hosted account each.

    ``secret`` signs both ways (HMAC-SHA256); it is shown once, when the participant is made or
    rolled. After a roll, ``previous_secret`` still signs and is still accepted until
    ``previous_secret_until``.
    """

    url: str = Field(max_length=2000)
    secret: str = Field(max_length=200)
    previous_secret: str | None = Field(default=None, max_length=200)
    previous_secret_until: datetime | None = None
    mapping: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class WebhookOutbox(SQLModel, table=True):
    """One event for a participant's help desk, written in the transaction of what it tells."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True, max_length=63)
    event_id: str = Field(unique=True, max_length=36)
    event: str = Field(max_length=40)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", index=True, max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class WebhookSeen(SQLModel, table=True):
    """An inbound signature accepted within the tolerance window (a second use is a replay)."""

    signature: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(max_length=63)
    seen_at: datetime = Field(default_factory=utcnow, index=True)
