"""The SLA event table: every warning and breach this node detected or was told of."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow


class SlaEventRecord(SQLModel, table=True):
    """One ``sla.event``: detected here (``origin`` local) or rolled up from below (received).

    ``dedupe_key`` makes each event happen once per account: a local event is keyed by its
    delegation, clock, kind and clock cycle (a rework that restarts the resolution clock starts
    a new cycle); a received one by its event id.
    """

    __table_args__ = (
        UniqueConstraint("account_id", "dedupe_key"),
        UniqueConstraint("account_id", "event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True, max_length=63)
    event_id: str = Field(max_length=36)
    dedupe_key: str = Field(max_length=120)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    # Our delegation the event concerns (local) or came over (received).
    delegation_id: str = Field(index=True, max_length=36)
    # The delegation at the level where the clock ran, when known (as disclosed).
    chain_delegation_id: str | None = Field(default=None, max_length=36)
    origin: str = Field(max_length=10)  # local | received
    kind: str = Field(max_length=10)  # warning | breach
    clock: str = Field(max_length=10)  # response | resolution
    level: int
    partner: str | None = Field(default=None, max_length=63)
    partner_label: str | None = Field(default=None, max_length=500)
    due_at: datetime
    at: datetime = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
