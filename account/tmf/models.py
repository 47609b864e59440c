"""Tables of the TMF621 facade: hub subscriptions, their event queue, the timeline cursor and
what the facade keeps per ticket beyond the Tix ticket itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow


class TmfHub(SQLModel, table=True):
    """A listener registered with ``POST /hub``; events reach it with its owner's visibility."""

    id: str = Field(primary_key=True, max_length=36)
    account_id: str = Field(index=True, max_length=63)
    owner_id: int = Field(foreign_key="user.id", index=True)
    callback: str = Field(max_length=2000)
    query: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)


class TmfNotification(SQLModel, table=True):
    """One event for one hub, rendered when derived; delivered in id order per hub."""

    id: int | None = Field(default=None, primary_key=True)
    hub_id: str = Field(index=True, max_length=36)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=60)
    ticket_id: int = Field(index=True)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", index=True, max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class TmfCursor(SQLModel, table=True):
    """How far the notifier has read the timeline (``TicketEvent.id``), and ids it skipped.

    ``gaps`` maps an id below ``last_id`` that was not visible yet (a transaction still open, or
    rolled back) to when it was first missed; it is read again until it shows up or expires.
    """

    account_id: str = Field(primary_key=True, max_length=63)
    last_id: int = 0
    gaps: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class TmfTicketInfo(SQLModel, table=True):
    """What a TMF client gave that Tix tickets do not hold, and the last status announced."""

    ticket_id: int = Field(primary_key=True, foreign_key="ticket.id")
    external_ids: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    requested_resolution_at: datetime | None = None
    notified_status: str | None = Field(default=None, max_length=20)
