"""Invitation and link tables, the contract, and the link API models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as ApiField
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from account.sla.clocks import SlaPolicy
from exchange.clock import utcnow

Disclosure = Literal["named", "anonymous", "hidden"]


class Contract(BaseModel):
    """What a link's two parties agreed: visibility, acceptance and SLA (ARCHITECTURE §3)."""

    model_config = ConfigDict(extra="forbid")

    share_requester_contacts: bool = False
    disclose_subcontractors: Disclosure = "named"
    allow_subdelegation: bool = True
    auto_accept: bool = False
    categories: list[str] = ApiField(default_factory=list, max_length=100)
    sla: dict[str, Any] = ApiField(
        default_factory=dict,
        description=(
            'SLA policy: {"calendar": {"time_zone", "weekly": {"mon": [["09:00", "17:00"]]},'
            ' "holidays": ["2026-12-25"]}, "targets": {"high": {"response_minutes": 30,'
            ' "resolution_minutes": 480}}, "rework": "restart"|"continue"}; no calendar means'
            " 24x7 UTC; {} for no SLA"
        ),
    )

    @field_validator("sla")
    @classmethod
    def _sla(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _valid_sla(value)


def _valid_sla(value: dict[str, Any]) -> dict[str, Any]:
    """An SLA policy in its normal form (``{}`` for none); a bad one is a clear 422."""
    if not value:
        return {}
    return SlaPolicy.from_dict(value).to_dict()


class Invitation(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=36)  # the token's jti
    account_id: str = Field(index=True, max_length=63)
    link_id: str = Field(max_length=36)
    contract: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    note: str = Field(default="", max_length=500)
    state: str = Field(default="open", max_length=10)  # open | used | revoked
    used_by: str | None = Field(default=None, max_length=63)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class Link(SQLModel, table=True):
    """One side of a partnership; ``direction`` says what the peer is to us."""

    __table_args__ = (UniqueConstraint("account_id", "peer_account", "direction"),)

    id: str = Field(primary_key=True, max_length=36)
    account_id: str = Field(index=True, max_length=63)
    peer_account: str = Field(index=True, max_length=63)
    peer_label: str = Field(default="", max_length=500)
    direction: str = Field(max_length=10)  # downstream: we delegate to the peer; upstream
    state: str = Field(default="active", max_length=10)  # active | suspended
    suspended_by: str | None = Field(default=None, max_length=10)  # local | peer
    peer_public_key: str = Field(max_length=64)
    peer_kid: str = Field(max_length=16)
    previous_kid: str | None = Field(default=None, max_length=16)
    previous_public_key: str | None = Field(default=None, max_length=64)
    previous_valid_until: datetime | None = None
    # The partner's API base URL (from the invitation or link.accept); large attachments are
    # fetched there by digest. None when the partner serves none.
    peer_api_url: str | None = Field(default=None, max_length=500)
    contract: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    seq_out: int = 0
    seq_in: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contract: Contract = ApiField(default_factory=Contract)
    note: str = ApiField(default="", max_length=500)
    expires_in_days: int = ApiField(default=7, ge=1, le=90)


class InvitationCreated(BaseModel):
    token: str
    invitation_id: str
    link_id: str
    expires_at: str


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = ApiField(min_length=10, max_length=8_000)


class LinkPublic(BaseModel):
    id: str
    account: str
    partner: str
    partner_label: str
    direction: str
    state: str
    partner_kid: str
    contract: dict[str, Any]
    created_at: str


class ContractPatch(BaseModel):
    """Contract fields to change; the ones left out keep their values."""

    model_config = ConfigDict(extra="forbid")

    share_requester_contacts: bool | None = None
    disclose_subcontractors: Disclosure | None = None
    allow_subdelegation: bool | None = None
    auto_accept: bool | None = None
    categories: list[str] | None = ApiField(default=None, max_length=100)
    sla: dict[str, Any] | None = None

    @field_validator("sla")
    @classmethod
    def _sla(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _valid_sla(value)


class LinkPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["active", "suspended"] | None = None
    contract: ContractPatch | None = None
