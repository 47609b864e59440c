"""The delegation table: one row on each end of an offered ticket, same ``delegation_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as ApiField
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow


class Delegation(SQLModel, table=True):
    """``role`` is ``out`` on the upstream (we offered it) and ``in`` on the downstream."""

    __table_args__ = (
        UniqueConstraint("account_id", "delegation_id"),
        # The SLA scheduler's query (account/sla/flows.py): due checks of the hosted accounts.
        Index("ix_delegation_account_next_check", "account_id", "sla_next_check_at"),
        # The ticket list's partner filter (account/tickets/service.py, list_visible).
        Index("ix_delegation_account_peer", "account_id", "peer_account", "ticket_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    delegation_id: str = Field(index=True, max_length=36)
    account_id: str = Field(index=True, max_length=63)
    role: str = Field(max_length=3)
    link_id: str = Field(foreign_key="link.id", index=True, max_length=36)
    peer_account: str = Field(max_length=63)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    state: str = Field(default="offered", index=True, max_length=20)
    remote_status: str | None = Field(default=None, max_length=20)
    remote_ref: str | None = Field(default=None, max_length=60)
    remote_assignee_role: str | None = Field(default=None, max_length=500)
    note: str = Field(default="", max_length=20_000)
    reason: str | None = Field(default=None, max_length=500)
    resolution: str | None = Field(default=None, max_length=20_000)
    subtree: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    seq_out: int = 0
    seq_in: int = 0
    offered_at: datetime = Field(default_factory=utcnow)
    accepted_at: datetime | None = None
    declined_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # SLA (account/sla/service.py): the contract's policy when the offer was made, the history
    # the clocks read (holds as [start, end|null], reworks as [resolved_at, reworked_at], RFC 3339
    # strings), and what the last evaluation found; the scheduler wakes at ``sla_next_check_at``.
    sla_policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    sla_holds: list[list[str | None]] = Field(default_factory=list, sa_column=Column(JSON))
    sla_reworks: list[list[str]] = Field(default_factory=list, sa_column=Column(JSON))
    response_due_at: datetime | None = None
    resolve_due_at: datetime | None = None
    sla_state: str = Field(default="none", max_length=10)
    sla_next_check_at: datetime | None = Field(default=None, index=True)


class DelegationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner: str = ApiField(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    note: str = ApiField(default="", max_length=20_000)
