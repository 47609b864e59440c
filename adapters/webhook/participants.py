"""Hosted help-desk participants: one hosted account (own Ed25519 key) per company.

``create`` redeems an upstream's invitation for a new participant like the e-mail adapter's
(``adapters.hosting``: a unique ``account_id``, the account's key file, the ``link.accept``
handshake) and makes a fresh HMAC secret (returned once) for the webhooks both ways; all in the
caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from account.config import Settings
from account.context import Identity
from account.errors import Invalid
from account.tmf.mapping import check_callback
from adapters.hosting import participants as hosting
from adapters.hosting.participants import JoinRequest
from adapters.webhook.mapping import ParticipantMapping
from adapters.webhook.models import WebhookParticipant
from exchange.clock import aware

# The longest time a rolled secret stays valid beside the new one.
MAX_SECRET_OVERLAP: Final = timedelta(days=7)


class ParticipantCreate(JoinRequest):
    url: str = Field(min_length=1, max_length=2000)
    mapping: ParticipantMapping = Field(default_factory=ParticipantMapping)


class SecretRoll(BaseModel):
    """How long the current secret stays valid beside the new one (0: revoke it at once)."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int = Field(default=86_400, ge=0, le=int(MAX_SECRET_OVERLAP.total_seconds()))


class ParticipantPatch(BaseModel):
    """A new URL or mapping; events already queued keep the names they were rendered with."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    mapping: ParticipantMapping | None = None


def mapping_of(participant: WebhookParticipant) -> ParticipantMapping:
    return ParticipantMapping.model_validate(participant.mapping or {})


def create(
    *,
    session: Session,
    settings: Settings,
    adapter: Identity,
    participant_in: ParticipantCreate,
    allowed_hosts: Sequence[str] = (),
) -> tuple[WebhookParticipant, Identity]:
    """Create the hosted account and accept the invitation as it; the secret is in the row."""
    try:
        check_callback(participant_in.url, allowed_hosts)
    except ValueError as exc:
        raise Invalid(f"url: {exc}") from exc
    registration = hosting.register(
        session=session,
        settings=settings,
        model=WebhookParticipant,
        name=participant_in.name,
        token=participant_in.token,
        api_url=None,
    )
    participant = WebhookParticipant(
        **registration.columns(adapter, participant_in.name),
        url=participant_in.url,
        secret=secrets.token_urlsafe(32),
        mapping=participant_in.mapping.model_dump(),
    )
    session.add(participant)
    session.flush()
    registration.save_key()
    return participant, registration.identity


def get(*, session: Session, adapter: Identity, account_id: str) -> WebhookParticipant:
    return hosting.get(session, WebhookParticipant, adapter=adapter, account_id=account_id)


def update(
    *,
    session: Session,
    participant: WebhookParticipant,
    patch: ParticipantPatch,
    allowed_hosts: Sequence[str] = (),
) -> WebhookParticipant:
    if patch.url is not None:
        try:
            check_callback(patch.url, allowed_hosts)
        except ValueError as exc:
            raise Invalid(f"url: {exc}") from exc
        participant.url = patch.url
    if patch.mapping is not None:
        participant.mapping = patch.mapping.model_dump()
    session.add(participant)
    session.flush()
    return participant


def rotate_secret(
    *, session: Session, participant: WebhookParticipant, overlap: timedelta, now: datetime
) -> WebhookParticipant:
    """Give the participant a new secret; the current one is still accepted and still signs
    (second ``v1=``) for ``overlap``, so the help desk can switch without losing a webhook.

    A roll while an older secret is still in its overlap drops that older one: at most two
    secrets are valid at any time. The new secret is in the row (shown once by the caller).
    """
    if not timedelta(0) <= overlap <= MAX_SECRET_OVERLAP:
        raise Invalid(f"overlap must be 0 to {int(MAX_SECRET_OVERLAP.total_seconds())} s")
    if overlap > timedelta(0):
        participant.previous_secret = participant.secret
        participant.previous_secret_until = now + overlap
    else:
        participant.previous_secret = None
        participant.previous_secret_until = None
    participant.secret = secrets.token_urlsafe(32)
    session.add(participant)
    session.flush()
    return participant


def previous_secrets(participant: WebhookParticipant, now: datetime) -> tuple[bytes, ...]:
    """The rolled secret while its overlap lasts (it signs and is accepted), else nothing."""
    until = participant.previous_secret_until
    if participant.previous_secret and until is not None and now < aware(until):
        return (participant.previous_secret.encode(),)
    return ()


def to_public(participant: WebhookParticipant) -> dict[str, Any]:
    until = participant.previous_secret_until
    return hosting.common_public(participant) | {
        "url": participant.url,
        "mapping": participant.mapping,
        "inbound": f"/webhooks/{participant.account_id}/inbound",
        "previous_secret_valid_until": (
            aware(until).isoformat() if participant.previous_secret and until else None
        ),
    }
