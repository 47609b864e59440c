"""Ticket, comment and timeline tables, and the ticket API models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as ApiField
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow

Priority = Literal["critical", "high", "normal", "low"]
Status = Literal[
    "new", "open", "in_progress", "on_hold", "resolved", "closed", "reopened",
    "offered", "declined", "cancelled",
]  # fmt: skip
CommentVisibility = Literal["public", "partner", "internal"]


class Ticket(SQLModel, table=True):
    # The list's filters, newest first, counted from the index alone (docs/performance.md,
    # "Scale"); the search index (not metadata) is in account/tickets/search.py.
    __table_args__ = (
        Index("ix_ticket_account_status", "account_id", "status", "id"),
        Index("ix_ticket_account_sla", "account_id", "sla_state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True, max_length=60)
    account_id: str = Field(index=True, max_length=63)
    title: str = Field(max_length=500)
    description: str = Field(default="", max_length=20_000)
    priority: str = Field(default="normal", max_length=20)
    category: str | None = Field(default=None, max_length=200)
    status: str = Field(default="new", index=True, max_length=20)
    service_object: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    requester: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    assignee: str | None = Field(default=None, max_length=100)
    organisation: str | None = Field(default=None, index=True, max_length=200)
    chain_id: str = Field(index=True, max_length=36)
    depth: int = 0
    upstream_account: str | None = Field(default=None, max_length=63)
    upstream_delegation_id: str | None = Field(default=None, max_length=36)
    upstream_ref: str | None = Field(default=None, max_length=60)
    resolution: str | None = Field(default=None, max_length=20_000)
    rating: int | None = None
    rating_comment: str | None = Field(default=None, max_length=20_000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    # The worst SLA state of the ticket's own clocks, its delegations' and its chain below
    # (none | ok | met | at_risk | breached); kept by account/sla/service.py for list filters.
    sla_state: str = Field(default="none", index=True, max_length=10)


class Comment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("ticket_id", "comment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    comment_id: str = Field(index=True, max_length=36)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    author: str = Field(max_length=500)
    body: str = Field(max_length=20_000)
    visibility: str = Field(default="partner", max_length=10)
    source_account: str | None = Field(default=None, max_length=63)
    created_at: datetime = Field(default_factory=utcnow)


class TicketEvent(SQLModel, table=True):
    """One line of a ticket's timeline: what happened, who did it, at which level."""

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=50)
    actor: str | None = Field(default=None, max_length=200)
    source_account: str | None = Field(default=None, max_length=63)
    level: int = 0
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class ServiceObjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str | None = ApiField(default=None, max_length=500)
    address: str | None = ApiField(default=None, max_length=500)
    equipment: str | None = ApiField(default=None, max_length=500)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ApiField(max_length=500)
    email: str | None = ApiField(default=None, max_length=500)
    phone: str | None = ApiField(default=None, max_length=500)
    organisation: str | None = ApiField(default=None, max_length=500)


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = ApiField(min_length=1, max_length=500)
    description: str = ApiField(default="", max_length=20_000)
    priority: Priority = "normal"
    category: str | None = ApiField(default=None, max_length=200)
    service_object: ServiceObjectIn | None = None
    requester: ContactIn | None = None
    assignee: str | None = ApiField(default=None, max_length=100)
    organisation: str | None = ApiField(default=None, max_length=200)


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = ApiField(default=None, min_length=1, max_length=500)
    description: str | None = ApiField(default=None, max_length=20_000)
    priority: Priority | None = None
    category: str | None = ApiField(default=None, max_length=200)
    service_object: ServiceObjectIn | None = None
    requester: ContactIn | None = None
    assignee: str | None = ApiField(default=None, max_length=100)
    addendum: str | None = ApiField(
        default=None, max_length=5_000, description="text appended to the description"
    )


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    note: str = ApiField(default="", max_length=20_000)


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = ApiField(min_length=1, max_length=20_000)
    visibility: CommentVisibility = "partner"


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = ApiField(default="", max_length=500)


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = ApiField(ge=1, le=5)
    comment: str = ApiField(default="", max_length=20_000)
