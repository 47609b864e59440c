"""Hosted help-desk participants: one hosted account (own Ed25519 key) per company.

``create`` redeems an upstream's invitation for a new participant, like the e-mail adapter's:
a unique ``account_id`` from the name, the account's key file (0600) under the data directory,
the ordinary ``link.accept`` handshake through the outbox, and a fresh HMAC secret (returned
once) for the webhooks both ways; all in the caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, select

from account.config import ACCOUNT_ID_RE, Settings
from account.context import Identity
from account.errors import Conflict, Invalid, NotFound
from account.links import service as link_service
from account.tmf.mapping import check_callback
from adapters.email.participants import key_path, slug
from adapters.webhook.mapping import ParticipantMapping
from adapters.webhook.models import WebhookParticipant
from exchange.signing import generate_key, load_key_file, write_key_file


class ParticipantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=10, max_length=8_000)
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    mapping: ParticipantMapping = Field(default_factory=ParticipantMapping)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("name must not be blank")
        return value


class ParticipantPatch(BaseModel):
    """A new URL or mapping; events already queued keep the names they were rendered with."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    mapping: ParticipantMapping | None = None


def new_account_id(session: Session, name: str) -> str:
    for _ in range(20):
        candidate = f"{slug(name)}-{secrets.token_hex(2)}"
        taken = session.exec(
            select(WebhookParticipant.id).where(WebhookParticipant.account_id == candidate)
        ).first()
        if ACCOUNT_ID_RE.match(candidate) and taken is None:
            return candidate
    raise Conflict("could not find a free account id for this name")


def load_identity(settings: Settings, participant: WebhookParticipant) -> Identity:
    return Identity(
        account_id=participant.account_id,
        label=participant.name,
        key=load_key_file(key_path(settings, participant.account_id)),
    )


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
    link_service.read_invitation(participant_in.token)
    account_id = new_account_id(session, participant_in.name)
    path = key_path(settings, account_id)
    if path.exists():
        raise Conflict("a key for this account exists already")
    key = generate_key()
    identity = Identity(account_id=account_id, label=participant_in.name, key=key)
    link = link_service.accept_invitation(
        session=session, identity=identity, token=participant_in.token, api_url=None
    )
    participant = WebhookParticipant(
        account_id=account_id,
        adapter_account=adapter.account_id,
        name=participant_in.name,
        url=participant_in.url,
        secret=secrets.token_urlsafe(32),
        mapping=participant_in.mapping.model_dump(),
        upstream_account=link.peer_account,
        link_id=link.id,
    )
    session.add(participant)
    session.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_key_file(path, key)
    return participant, identity


def get(*, session: Session, adapter: Identity, account_id: str) -> WebhookParticipant:
    row = session.exec(
        select(WebhookParticipant).where(
            WebhookParticipant.account_id == account_id,
            WebhookParticipant.adapter_account == adapter.account_id,
        )
    ).first()
    if row is None:
        raise NotFound("participant not found")
    return row


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
    return {
        "account_id": participant.account_id,
        "name": participant.name,
        "url": participant.url,
        "mapping": participant.mapping,
        "upstream": participant.upstream_account,
        "link_id": participant.link_id,
        "inbound": f"/webhooks/{participant.account_id}/inbound",
    }
