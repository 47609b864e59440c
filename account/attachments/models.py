"""The attachment table and the attachment API models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow

AttachmentVisibility = Literal["public", "partner", "internal"]
VISIBILITIES: tuple[str, ...] = ("public", "partner", "internal")


class Attachment(SQLModel, table=True):
    """A file on a ticket; its content lives in the blob store under ``sha256``.

    ``stored`` is false while the content of a large attachment from a partner has not been
    fetched yet; ``source_delegation_id`` says which delegation (and so which link) it came
    over, which is where it is fetched from.
    """

    __table_args__ = (UniqueConstraint("ticket_id", "attachment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    attachment_id: str = Field(index=True, max_length=36)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=255)
    size: int
    sha256: str = Field(index=True, max_length=64)
    visibility: str = Field(default="partner", max_length=10)
    uploaded_by: str = Field(default="", max_length=500)
    origin_level: int | None = None
    source_account: str | None = Field(default=None, max_length=63)
    source_delegation_id: int | None = Field(default=None, foreign_key="delegation.id")
    stored: bool = Field(default=False, index=True)
    fetch_tries: int = 0
    next_fetch_at: datetime | None = Field(default=None, index=True)
    fetch_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow)


class AttachmentIn(BaseModel):
    """A local upload whose content is already in the blob store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str
    content_type: str
    size: int
    sha256: str
    visibility: AttachmentVisibility = "partner"


class AttachmentPublic(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    visibility: str
    uploaded_by: str
    source_account: str | None
    stored: bool
    created_at: str


class AttachmentList(BaseModel):
    items: list[AttachmentPublic]
    total: int
