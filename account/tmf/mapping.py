"""Tix tickets ↔ TMF621 v5 TroubleTicket resources. Pure: no I/O, no framework.

The mapping table (also in ``docs/tmf621.md``):

================  =================  =====================================================
Tix status        TMF621 status      note
================  =================  =====================================================
new, open         acknowledged       ``inProgress``/``resolved`` once delegated (see below)
offered           acknowledged       an offer from an upstream, not accepted yet
in_progress       inProgress
reopened          inProgress
on_hold           pending            waiting for information (InformationRequiredEvent)
resolved          resolved
closed            closed
declined          rejected
cancelled         cancelled
================  =================  =====================================================

A ticket this node handed down the chain is as far as the work below it: while the ticket is
``new``/``open``/``in_progress``/``reopened`` and has live outgoing delegations, it is
``resolved`` when all of them are resolved (or confirmed) and ``inProgress`` once any partner
accepted. So a resolution rolled up from the chain reaches TMF clients as a status change.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from exchange.clock import instant

API_BASE: Final = "/tmf-api/troubleTicket/v5"

TMF_STATUSES: Final = (
    "acknowledged", "rejected", "pending", "held", "inProgress", "cancelled", "closed", "resolved",
)  # fmt: skip

STATUS_TO_TMF: Final[Mapping[str, str]] = {
    "new": "acknowledged",
    "open": "acknowledged",
    "offered": "acknowledged",
    "in_progress": "inProgress",
    "reopened": "inProgress",
    "on_hold": "pending",
    "resolved": "resolved",
    "closed": "closed",
    "declined": "rejected",
    "cancelled": "cancelled",
}

# Local statuses whose TMF status follows the delegations below them.
_FOLLOWS_CHAIN: Final = frozenset({"new", "open", "in_progress", "reopened"})
_LIVE_DELEGATION: Final = frozenset({"offered", "accepted", "in_progress", "resolved", "confirmed"})
_DONE_DELEGATION: Final = frozenset({"resolved", "confirmed"})


def tmf_status(local: str, delegation_states: Iterable[str] = ()) -> str:
    """The TMF status of a ticket in ``local`` status with these outgoing delegation states."""
    mapped = STATUS_TO_TMF.get(local, "acknowledged")
    if local not in _FOLLOWS_CHAIN:
        return mapped
    live = [s for s in delegation_states if s in _LIVE_DELEGATION]
    if live and all(s in _DONE_DELEGATION for s in live):
        return "resolved"
    if any(s != "offered" for s in live):
        return "inProgress"
    return mapped


def local_statuses_for(tmf: str) -> frozenset[str]:
    """Local statuses whose ticket may show as ``tmf`` (a superset when the chain decides)."""
    direct = {local for local, mapped in STATUS_TO_TMF.items() if mapped == tmf}
    if tmf in ("inProgress", "resolved"):
        direct |= _FOLLOWS_CHAIN
    return frozenset(direct)


# What a TMF client may ask the status to become, as the local target from a given status.
_TARGETS: Final[Mapping[str, str]] = {
    "inProgress": "in_progress",
    "pending": "on_hold",
    "held": "on_hold",
    "resolved": "resolved",
    "closed": "closed",
    "cancelled": "cancelled",
}


def local_target(tmf: str, current: str) -> str | None:
    """The local status a PATCH to TMF ``tmf`` asks for; None when there is no such move."""
    if tmf == "inProgress" and current == "resolved":
        return "reopened"
    if tmf == STATUS_TO_TMF.get(current) and tmf != "inProgress":
        return current  # nothing to do (``acknowledged`` on an acknowledged ticket, …)
    return _TARGETS.get(tmf)


PRIORITY_TO_TMF: Final[Mapping[str, str]] = {
    "critical": "Critical",
    "high": "High",
    "normal": "Medium",
    "low": "Low",
}
SEVERITY_OF: Final[Mapping[str, str]] = {
    "critical": "Critical",
    "high": "Major",
    "normal": "Minor",
    "low": "Minor",
}
_PRIORITY_IN: Final[Mapping[str, str]] = {
    "critical": "critical",
    "high": "high",
    "medium": "normal",
    "normal": "normal",
    "low": "low",
}
_SEVERITY_IN: Final[Mapping[str, str]] = {
    "critical": "critical",
    "major": "high",
    "minor": "normal",
}


def priority_in(priority: str | None, severity: str | None) -> str | None:
    """The Tix priority for a TMF ``priority`` (wins) or ``severity``; ValueError if unknown."""
    if priority is not None:
        value = _PRIORITY_IN.get(priority.strip().lower())
        if value is None:
            raise ValueError("priority must be one of Critical, High, Medium, Low")
        return value
    if severity is not None:
        value = _SEVERITY_IN.get(severity.strip().lower())
        if value is None:
            raise ValueError("severity must be one of Critical, Major, Minor")
        return value
    return None


def priorities_of_severity(severity: str) -> frozenset[str]:
    """The Tix priorities shown with this TMF severity; ValueError if unknown."""
    wanted = severity.strip().lower()
    found = frozenset(p for p, s in SEVERITY_OF.items() if s.lower() == wanted)
    if not found:
        raise ValueError("severity must be one of Critical, Major, Minor")
    return found


# -- events -------------------------------------------------------------------------------------

CREATE: Final = "TroubleTicketCreateEvent"
STATUS_CHANGE: Final = "TroubleTicketStatusChangeEvent"
ATTRIBUTE_CHANGE: Final = "TroubleTicketAttributeValueChangeEvent"
RESOLVED: Final = "TroubleTicketResolvedEvent"
INFORMATION_REQUIRED: Final = "TroubleTicketInformationRequiredEvent"
EVENT_TYPES: Final = (CREATE, STATUS_CHANGE, ATTRIBUTE_CHANGE, RESOLVED, INFORMATION_REQUIRED)

# Timeline kinds that change what a TroubleTicket shows (fields, notes, parties, identifiers).
_ATTRIBUTE_KINDS: Final = frozenset(
    {
        "updated",
        "partner_update",
        "comment",
        "delegated",
        "partner_accepted",
        "partner_declined",
        "partner_status",
        "chain_status",
        "recalled",
        "confirmed",
        "rework",
        "rated",
    }
)


def event_types(kind: str, old_status: str | None, new_status: str) -> list[str]:
    """The TMF events one timeline event causes, given the TMF status before and now.

    ``old_status`` None means the facade never announced this ticket (its creation).
    """
    if kind in ("created", "offered"):
        return [CREATE]
    if old_status is not None and old_status != new_status:
        out = [STATUS_CHANGE]
        if new_status == "resolved":
            out.append(RESOLVED)
        elif new_status == "pending":
            out.append(INFORMATION_REQUIRED)
        return out
    if kind in _ATTRIBUTE_KINDS or kind.startswith("sla_"):
        return [ATTRIBUTE_CHANGE]
    return []


def event_visible(kind: str, detail: Mapping[str, Any] | None, role: str) -> bool:
    """Whether a subscriber of ``role`` may learn of this timeline event at all."""
    if kind != "comment":
        return True
    visibility = (detail or {}).get("visibility", "partner")
    if visibility == "internal":
        return False
    return role != "contact" or visibility == "public"


def parse_query(query: str | None) -> frozenset[str] | None:
    """The event types a hub ``query`` selects (None: all); ValueError for what we cannot do.

    Supported: ``eventType=A,B`` (repeatable, ``&``-joined), with TMF event type names.
    """
    if query is None or not query.strip():
        return None
    wanted: set[str] = set()
    pairs = parse_qsl(query.strip().lstrip("?"), keep_blank_values=True, strict_parsing=False)
    if not pairs:
        raise ValueError("query must look like eventType=TroubleTicketStatusChangeEvent")
    for key, value in pairs:
        if key != "eventType":
            raise ValueError(f"unsupported hub query attribute: {key[:50]!r} (use eventType)")
        for name in value.split(","):
            name = name.strip()
            if name not in EVENT_TYPES:
                raise ValueError(
                    f"unknown event type {name[:60]!r}; known: {', '.join(EVENT_TYPES)}"
                )
            wanted.add(name)
    return frozenset(wanted)


_HOST_RE: Final = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")


def check_callback(url: str, allowed_hosts: Sequence[str] = ()) -> str:
    """An acceptable listener URL (http or https, a host, no credentials); ValueError if not.

    ``allowed_hosts`` (from ``TIX_TMF_CALLBACK_HOSTS``) limits the hosts when not empty; an
    entry ``.example.com`` allows that domain's subdomains.
    """
    if len(url) > 2000 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError("callback must be an absolute http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("callback must be an absolute http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("callback must not carry credentials")
    host = parts.hostname or ""
    hostport = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if not host or not _HOST_RE.match(hostport):
        raise ValueError("callback must name a host")
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise ValueError("callback has an invalid port") from exc
    if parts.fragment:
        raise ValueError("callback must not have a fragment")
    if allowed_hosts and not any(
        host == allowed.lower() or (allowed.startswith(".") and host.endswith(allowed.lower()))
        for allowed in allowed_hosts
    ):
        raise ValueError("callback host is not allowed by this node's egress rule")
    return url


def backoff_seconds(attempts: int, *, initial: float, cap: float, jitter: float) -> float:
    """Delay before attempt ``attempts + 1``: exponential, capped, with ``jitter`` in [0, 1)."""
    exponent = min(max(attempts - 1, 0), 30)
    base: float = min(cap, initial * float(2**exponent))
    return base * (0.5 + jitter / 2)


def jitter() -> float:
    return float(random.random())  # noqa: S311  (spreading retries, not security)


# -- the resource --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    role: str
    id: str
    name: str
    referred_type: str = "Organization"


@dataclass(frozen=True)
class ExternalId:
    owner: str
    kind: str
    id: str


@dataclass(frozen=True)
class NoteFacts:
    id: str
    author: str
    date: datetime
    text: str


@dataclass(frozen=True)
class TicketFacts:
    """Everything a TroubleTicket shows, already filtered for the caller."""

    number: str
    title: str
    description: str
    priority: str
    category: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    status_changed_at: datetime
    status_reason: str | None
    requested_resolution_at: datetime | None
    external_ids: list[ExternalId] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    notes: list[NoteFacts] = field(default_factory=list)
    expected_resolution_at: datetime | None = None
    sla_state: str = "none"


def expected_resolution(
    own: datetime | None, below: Iterable[tuple[str, datetime | None]]
) -> datetime | None:
    """``expectedResolutionDate``: this node's own SLA resolution deadline (from its upstream's
    contract) or, without one, the latest deadline of the live delegations below it."""
    if own is not None:
        return own
    dues = [due for state, due in below if due is not None and state in _LIVE_DELEGATION]
    return max(dues) if dues else None


def chain_identifiers(
    *,
    nodes: Sequence[Mapping[str, Any]],
    refs: Mapping[str, str],
    upstream: tuple[str, str] | None,
    client_ids: Sequence[Mapping[str, Any]],
    chain_id: str,
) -> list[ExternalId]:
    """``externalIdentifier``: the systems the ticket passed through, latest hand-off first.

    ``nodes`` is the disclosed chain below this node (deepest hand-off is the latest), ``refs``
    the partner ticket numbers of our own delegations, ``upstream`` the ``(account, ref)`` it
    came from, ``client_ids`` what the TMF client gave at creation; the Tix chain id ends it.
    """
    out: list[ExternalId] = []
    flat = _walk(nodes)
    for node in sorted(flat, key=lambda n: (-int(n.get("level", 0)), str(n.get("offered_at")))):
        owner = node.get("partner") or node.get("partner_label") or "unknown"
        ref = refs.get(str(node.get("id")))
        if ref:
            out.append(ExternalId(owner=str(owner), kind="TixTicket", id=ref))
        else:
            out.append(ExternalId(owner=str(owner), kind="TixDelegation", id=str(node.get("id"))))
    if upstream is not None:
        out.append(ExternalId(owner=upstream[0], kind="TixTicket", id=upstream[1]))
    for item in client_ids:
        out.append(
            ExternalId(
                owner=str(item.get("owner") or ""),
                kind=str(item.get("externalIdentifierType") or ""),
                id=str(item["id"]),
            )
        )
    out.append(ExternalId(owner="tix", kind="TixChain", id=chain_id))
    return out


def chain_parties(
    *,
    provider: tuple[str, str],
    nodes: Sequence[Mapping[str, Any]],
    upstream_account: str | None,
    organisation: str | None,
    requester: str | None,
) -> list[Party]:
    """``relatedParty``: this node's company, who it came from, the disclosed companies below."""
    out = [Party(role="serviceProvider", id=provider[0], name=provider[1])]
    if upstream_account:
        out.append(Party(role="requester", id=upstream_account, name=upstream_account))
    if organisation:
        out.append(Party(role="customer", id=organisation, name=organisation))
    if requester:
        out.append(Party(role="reporter", id=requester, name=requester, referred_type="Individual"))
    for node in _walk(nodes):
        level = int(node.get("level", 0))
        label = str(node.get("partner_label") or f"subcontractor, level {level}")
        party_id = node.get("partner") or f"subcontractor-level-{level}"
        out.append(Party(role=f"subcontractor level {level}", id=str(party_id), name=label))
    return out


def _walk(nodes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.get("delegations") or []))
    return out


def render(facts: TicketFacts, *, base_url: str) -> dict[str, Any]:
    """The TroubleTicket JSON (``TroubleTicket_RES``) of a ticket."""
    doc: dict[str, Any] = {
        "@type": "TroubleTicket",
        "id": facts.number,
        "href": f"{base_url}{API_BASE}/troubleTicket/{facts.number}",
        "name": facts.title,
        "description": facts.description,
        "severity": SEVERITY_OF.get(facts.priority, "Minor"),
        "priority": PRIORITY_TO_TMF.get(facts.priority, "Medium"),
        "ticketType": facts.category or "incident",
        "status": facts.status,
        "creationDate": instant(facts.created_at),
        "lastUpdate": instant(facts.updated_at),
        "statusChangeDate": instant(facts.status_changed_at),
        "externalIdentifier": [_external_id(e) for e in facts.external_ids],
        "relatedParty": [
            {
                "@type": "RelatedPartyRefOrPartyRoleRef",
                "role": p.role,
                "partyOrPartyRole": {
                    "@type": "PartyRef",
                    "@referredType": p.referred_type,
                    "id": p.id,
                    "name": p.name,
                },
            }
            for p in facts.parties
        ],
        "note": [
            {
                "@type": "Note",
                "id": n.id,
                "author": n.author,
                "date": instant(n.date),
                "text": n.text,
            }
            for n in facts.notes
        ],
    }
    if facts.status_reason:
        doc["statusChangeReason"] = facts.status_reason
    if facts.resolved_at is not None and facts.status in ("resolved", "closed"):
        doc["resolutionDate"] = instant(facts.resolved_at)
    if facts.expected_resolution_at is not None:
        doc["expectedResolutionDate"] = instant(facts.expected_resolution_at)
    doc["troubleTicketCharacteristic"] = [
        {
            "@type": "StringCharacteristic",
            "name": "slaState",
            "valueType": "string",
            "value": facts.sla_state,
        }
    ]
    if facts.requested_resolution_at is not None:
        doc["requestedResolutionDate"] = instant(facts.requested_resolution_at)
    return doc


def _external_id(e: ExternalId) -> dict[str, str]:
    out = {"@type": "ExternalIdentifier", "id": e.id}
    if e.owner:
        out["owner"] = e.owner
    if e.kind:
        out["externalIdentifierType"] = e.kind
    return out


ALWAYS_FIELDS: Final = frozenset({"id", "href", "@type"})


def select_fields(doc: Mapping[str, Any], fields: str | None) -> dict[str, Any]:
    """Attribute selection: ``fields=name,status`` keeps those first-level attributes (and id,
    href, @type); unknown names select nothing; absent or empty keeps everything."""
    if fields is None or not fields.strip():
        return dict(doc)
    wanted = {name.strip() for name in fields.split(",")} | ALWAYS_FIELDS
    return {key: value for key, value in doc.items() if key in wanted}


def event(
    *,
    event_id: str,
    event_type: str,
    at: datetime,
    ticket: Mapping[str, Any],
    reporting: tuple[str, str],
    information_required: bool = False,
) -> dict[str, Any]:
    """A listener notification (``TroubleTicket…Event``) carrying the ticket as it is now."""
    payload: dict[str, Any] = {"troubleTicket": dict(ticket)}
    if information_required:
        payload["informationRequired"] = {"op": "add", "path": "/note/-"}
    return {
        "@type": event_type,
        "@baseType": "Event",
        "eventId": event_id,
        "eventType": event_type,
        "eventTime": instant(at),
        "timeOccurred": instant(at),
        "domain": "TroubleTicket",
        "title": event_type,
        "reportingSystem": {
            "@type": "EntityRef",
            "@referredType": "TixNode",
            "id": reporting[0],
            "name": reporting[1],
        },
        "event": payload,
    }
