"""Hosted help-desk participants: one hosted account (own Ed25519 key) per company.

``create`` redeems an upstream's invitation for a new participant like the e-mail adapter's
(``adapters.hosting``: a unique ``account_id``, the account's key file, the ``link.accept``
handshake) and makes a fresh HMAC secret (returned once) for the webhooks both ways; all in the
caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

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


class ParticipantCreate(JoinRequest):
    url: str = Field(min_length=1, max_length=2000)
    mapping: ParticipantMapping = Field(default_factory=ParticipantMapping)


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


def to_public(participant: WebhookParticipant) -> dict[str, Any]:
    return hosting.common_public(participant) | {
        "url": participant.url,
        "mapping": participant.mapping,
        "inbound": f"/webhooks/{participant.account_id}/inbound",
    }
