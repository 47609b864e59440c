"""Per-participant field and status mapping between Tix tickets and a help desk. Pure.

A participant's ``mapping`` (given when it is created) renames the ticket's fields in what the
adapter POSTs, translates statuses and priorities both ways, for example for Zendesk::

    {"fields": {"title": "subject", "number": "external_id"},
     "status_out": {"offered": "new", "open": "open", "in_progress": "open",
                    "on_hold": "hold", "resolved": "solved"},
     "status_in": {"open": "in_progress", "pending": "on_hold", "hold": "on_hold",
                   "solved": "resolved"},
     "priority_out": {"critical": "urgent", "normal": "normal"}}

Unmapped fields keep their Tix names, unmapped values their Tix values; a status the help desk
sends must map to ``in_progress``, ``on_hold`` or ``resolved`` (or be one of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from account.tickets.states import TICKET_STATUSES

TICKET_FIELDS: Final = (
    "ticket_id", "number", "title", "description", "priority", "category", "status",
    "service_object", "requester", "created_at", "upstream",
)  # fmt: skip
INBOUND_TARGETS: Final = ("in_progress", "on_hold", "resolved")
PRIORITIES: Final = ("critical", "high", "normal", "low")


class ParticipantMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, str] = Field(default_factory=dict, max_length=len(TICKET_FIELDS))
    status_out: dict[str, str] = Field(default_factory=dict, max_length=20)
    status_in: dict[str, str] = Field(default_factory=dict, max_length=50)
    priority_out: dict[str, str] = Field(default_factory=dict, max_length=4)

    @model_validator(mode="after")
    def _check(self) -> ParticipantMapping:
        unknown = set(self.fields) - set(TICKET_FIELDS)
        if unknown:
            raise ValueError(f"unknown ticket fields: {', '.join(sorted(unknown))}")
        names = [n for n in self.fields.values()]
        if any(not n or len(n) > 100 for n in names) or len(set(names)) != len(names):
            raise ValueError("field names must be distinct, 1 to 100 characters")
        renamed = set(self.fields)
        clashes = (set(names) & set(TICKET_FIELDS)) - renamed
        if clashes:
            raise ValueError(
                f"field names clash with unmapped fields: {', '.join(sorted(clashes))}"
            )
        if set(self.status_out) - set(TICKET_STATUSES):
            raise ValueError("status_out keys must be Tix statuses")
        if set(self.status_in.values()) - set(INBOUND_TARGETS):
            raise ValueError(f"status_in values must be among {', '.join(INBOUND_TARGETS)}")
        if set(self.priority_out) - set(PRIORITIES):
            raise ValueError("priority_out keys must be Tix priorities")
        for table in (self.status_out, self.status_in, self.priority_out):
            if any(not k or not v or len(k) > 100 or len(v) > 100 for k, v in table.items()):
                raise ValueError("mapped values must be 1 to 100 characters")
        return self


def ticket_out(ticket: Mapping[str, Any], mapping: ParticipantMapping) -> dict[str, Any]:
    """The ticket as the help desk names it."""
    out: dict[str, Any] = {}
    for name, value in ticket.items():
        if name == "status" and isinstance(value, str):
            value = mapping.status_out.get(value, value)
        elif name == "priority" and isinstance(value, str):
            value = mapping.priority_out.get(value, value)
        out[mapping.fields.get(name, name)] = value
    return out


def status_in(value: str, mapping: ParticipantMapping) -> str:
    """The Tix status for the help desk's ``value``; ValueError if it has none."""
    target = mapping.status_in.get(value, value)
    if target not in INBOUND_TARGETS:
        raise ValueError(f"status {value[:100]!r} does not map to {', '.join(INBOUND_TARGETS)}")
    return target
