"""Bodies of the message types of protocol version 1 (ARCHITECTURE §5).

Bodies carry state, not deltas: a ``ticket.status`` holds the whole current status and the
disclosed subtree, so a receiver that sees messages late or twice never rolls state back.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import (
    AccountId,
    Instant,
    Kid,
    LongText,
    NonNegative,
    Priority,
    ShortText,
    TicketRef,
    TicketStatusName,
    Uuid,
    Visibility,
    WireModel,
)


class Due(WireModel):
    """Deadlines of one level, as instants (absent when no SLA applies)."""

    response_by: Instant | None = None
    resolve_by: Instant | None = None


class Contact(WireModel):
    name: ShortText
    email: ShortText | None = None
    phone: ShortText | None = None
    organisation: ShortText | None = None


class ServiceObject(WireModel):
    site: ShortText | None = None
    address: ShortText | None = None
    equipment: ShortText | None = None


class TicketSnapshot(WireModel):
    """What the downstream learns of the upstream ticket when it is offered."""

    ref: TicketRef
    title: ShortText
    description: LongText = ""
    priority: Priority = "normal"
    category: ShortText | None = None
    service_object: ServiceObject | None = None
    requester: Contact | None = None
    created_at: Instant


# An absolute http(s) URL with a host and no user info, query or fragment.
HttpUrl = Annotated[
    str,
    Field(
        max_length=500,
        pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/\-]*)?$",
    ),
]


class LinkAccept(WireModel):
    """The downstream redeemed an invitation; carries the token and the key to pin."""

    token: Annotated[str, Field(max_length=8_000)]
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
    kid: Kid
    display_name: ShortText
    # Where the downstream's HTTP API is reached (large attachments are fetched there); absent
    # in acceptances from nodes that serve none.
    api_url: HttpUrl | None = None


class LinkRekey(WireModel):
    """Signed with the old key: from now on, pin this one."""

    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
    kid: Kid
    overlap_seconds: NonNegative = 86_400


class LinkSuspend(WireModel):
    suspended: bool
    reason: ShortText = ""


class DelegationOffer(WireModel):
    ticket: TicketSnapshot
    chain_id: Uuid
    depth: Annotated[int, Field(ge=1, le=32)]
    note: LongText = ""
    due: Due | None = None


class DelegationAccept(WireModel):
    ref: TicketRef
    accepted_at: Instant


class DelegationDecline(WireModel):
    reason: ShortText = ""
    declined_at: Instant


class DelegationRecall(WireModel):
    reason: ShortText = ""
    recalled_at: Instant


class TicketUpdate(WireModel):
    """Down the chain: the current values of what the upstream may change after the offer."""

    title: ShortText | None = None
    priority: Priority | None = None
    due: Due | None = None
    addendum: LongText | None = None


class ChainNode(WireModel):
    """One delegation below the sender, as far as the sender's contract discloses it."""

    id: Uuid
    partner: AccountId | None
    partner_label: ShortText
    level: Annotated[int, Field(ge=1, le=32)]
    state: ShortText
    status: TicketStatusName | None = None
    assignee_role: ShortText | None = None
    offered_at: Instant | None = None
    accepted_at: Instant | None = None
    resolved_at: Instant | None = None
    due: Due | None = None
    sla_state: Literal["none", "ok", "met", "at_risk", "breached"] = "ok"
    delegations: list[ChainNode] = Field(default_factory=list, max_length=200)


class TicketStatus(WireModel):
    """Up the chain: the sender's own ticket status and its disclosed subtree."""

    ref: TicketRef
    status: TicketStatusName
    changed_at: Instant
    assignee_role: ShortText | None = None
    accepted_at: Instant | None = None
    resolved_at: Instant | None = None
    resolution: LongText | None = None
    note: LongText | None = None
    subtree: list[ChainNode] = Field(default_factory=list, max_length=200)


class TicketComment(WireModel):
    comment_id: Uuid
    author: ShortText
    body: LongText
    visibility: Visibility = "partner"
    created_at: Instant
    origin_level: Annotated[int, Field(ge=0, le=32)] | None = None


class TicketAttachment(WireModel):
    """A file on the ticket: inline (standard base64) up to the sender's limit, else by digest.

    Without ``content_b64`` the receiver fetches the content from the sender's API by
    ``sha256`` (``GET /api/v1/federation/attachments/{sha256}``) and checks the digest.
    """

    attachment_id: Uuid
    filename: ShortText
    content_type: ShortText
    size: NonNegative
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    content_b64: Annotated[str, Field(max_length=200_000)] | None = None
    visibility: Visibility = "partner"
    uploaded_by: ShortText | None = None
    created_at: Instant | None = None
    origin_level: Annotated[int, Field(ge=0, le=32)] | None = None


class SlaEvent(WireModel):
    """Up the chain: a clock at ``level`` passed 75 % (warning) or 100 % (breach) of its target.

    ``delegation`` is the delegation whose clock it is and ``partner`` / ``partner_label`` the
    company that held it, as far as each link on the way up discloses them.
    """

    event_id: Uuid
    kind: Literal["warning", "breach"]
    clock: Literal["response", "resolution"]
    level: Annotated[int, Field(ge=0, le=32)]
    partner: AccountId | None = None
    partner_label: ShortText | None = None
    delegation: Uuid | None = None
    due_at: Instant
    at: Instant


class ResolutionConfirm(WireModel):
    note: LongText = ""
    confirmed_at: Instant


class ResolutionRework(WireModel):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    requested_at: Instant


class Rating(WireModel):
    score: Annotated[int, Field(ge=1, le=5)]
    comment: LongText = ""
