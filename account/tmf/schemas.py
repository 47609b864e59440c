"""What a TMF621 client may send: the parts of ``TroubleTicket_FVO`` / ``_MVO`` and ``Hub_FVO``
this facade maps onto Tix tickets. Anything else is refused (400), never silently dropped."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

TmfStatus = Literal[
    "acknowledged", "rejected", "pending", "held", "inProgress", "cancelled", "closed", "resolved"
]


class TmfObject(BaseModel):
    """A TMF object: the polymorphism attributes are accepted, nothing unknown is."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type_: str | None = Field(default=None, alias="@type", max_length=100)
    base_type: str | None = Field(default=None, alias="@baseType", max_length=100)
    schema_location: str | None = Field(default=None, alias="@schemaLocation", max_length=500)


class ExternalIdentifierIn(TmfObject):
    id: str = Field(min_length=1, max_length=200)
    owner: str | None = Field(default=None, max_length=200)
    externalIdentifierType: str | None = Field(default=None, max_length=100)


class NoteIn(TmfObject):
    text: str = Field(min_length=1, max_length=20_000)
    id: str | None = Field(default=None, max_length=36)
    author: str | None = Field(default=None, max_length=500)
    date: AwareDatetime | None = None


class PartyRefIn(TmfObject):
    id: str | None = Field(default=None, max_length=200)
    href: str | None = Field(default=None, max_length=2000)
    name: str | None = Field(default=None, max_length=500)
    referred_type: str | None = Field(default=None, alias="@referredType", max_length=100)
    partyId: str | None = Field(default=None, max_length=200)
    partyName: str | None = Field(default=None, max_length=500)


class RelatedPartyIn(TmfObject):
    role: Literal["customer", "reporter", "originator"]
    partyOrPartyRole: PartyRefIn


class TroubleTicketCreate(TmfObject):
    description: str = Field(max_length=20_000)
    severity: str = Field(max_length=50)
    ticketType: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, min_length=1, max_length=500)
    priority: str | None = Field(default=None, max_length=50)
    status: Literal["acknowledged"] | None = None
    requestedResolutionDate: AwareDatetime | None = None
    externalIdentifier: list[ExternalIdentifierIn] = Field(default_factory=list, max_length=20)
    note: list[NoteIn] = Field(default_factory=list, max_length=50)
    relatedParty: list[RelatedPartyIn] = Field(default_factory=list, max_length=20)


class TroubleTicketPatch(TmfObject):
    """A JSON merge patch (RFC 7386) of a TroubleTicket; ``note`` entries are appended."""

    name: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    severity: str | None = Field(default=None, max_length=50)
    priority: str | None = Field(default=None, max_length=50)
    ticketType: str | None = Field(default=None, min_length=1, max_length=200)
    status: TmfStatus | None = None
    statusChangeReason: str | None = Field(default=None, max_length=20_000)
    requestedResolutionDate: AwareDatetime | None = None
    externalIdentifier: list[ExternalIdentifierIn] | None = Field(default=None, max_length=20)
    note: list[NoteIn] | None = Field(default=None, max_length=50)


# Merge-patch members that may not be removed (``null``).
NOT_NULLABLE = frozenset(
    {"name", "description", "severity", "priority", "ticketType", "status", "note"}
)


class HubIn(TmfObject):
    callback: str = Field(min_length=1, max_length=2000)
    query: str | None = Field(default=None, max_length=1000)
