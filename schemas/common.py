"""Constrained scalar types shared by the envelope and the message bodies."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ACCOUNT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]
Instant = Annotated[str, StringConstraints(pattern=INSTANT_PATTERN)]
"""An RFC 3339 instant in UTC with milliseconds: ``2026-11-22T08:00:00.000Z``."""
Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Kid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
ShortText = Annotated[str, StringConstraints(max_length=500)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
TicketRef = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{0,40}-[0-9]{1,12}$")]

Priority = Literal["critical", "high", "normal", "low"]
TicketStatusName = Literal[
    "new",
    "open",
    "in_progress",
    "on_hold",
    "resolved",
    "closed",
    "reopened",
    "offered",
    "declined",
    "cancelled",
]
Visibility = Literal["public", "partner"]
NonNegative = Annotated[int, Field(ge=0)]


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields refused, no floats anywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
