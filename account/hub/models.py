"""The node's record of the invitations it sent through the hub, and what became of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow

SENT_STATES = ("pending", "accepted", "declined", "expired", "taken", "withdrawn")


class HubSentInvitation(SQLModel, table=True):
    """One invitation sent through the hub: ``id`` is the hub's id, ``invitation_id`` the
    node's own invitation (the token's jti). ``state`` starts ``pending`` and becomes what the
    poller learns from the hub (``account.hub.service.sync_sent``): ``accepted``, ``declined``
    (with the partner's ``reason``), ``expired``, or ``taken`` (the partner's node took it
    without saying which)."""

    __tablename__ = "hub_sent_invitation"
    __table_args__ = (Index("ix_hub_sent_invitation_account_state", "account_id", "state"),)

    id: str = Field(primary_key=True, max_length=36)
    account_id: str = Field(max_length=63)
    invitation_id: str = Field(max_length=36)
    link_id: str = Field(max_length=36)
    to_account: str = Field(max_length=63)
    to_label: str = Field(default="", max_length=200)
    note: str = Field(default="", max_length=500)
    state: str = Field(default="pending", max_length=16)
    reason: str = Field(default="", max_length=500)
    sent_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    decided_at: datetime | None = None
