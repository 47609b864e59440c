"""Hosted e-mail participants: one hosted account (own Ed25519 key) per e-mail-only company.

``create`` redeems an upstream's invitation for a new participant: it derives a unique
``account_id`` from the name, writes the account's key file (0600) under the data directory,
accepts the link as that account (the ordinary ``link.accept`` handshake through the outbox)
and queues the welcome mail, all in the caller's transaction.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, select

from account.config import ACCOUNT_ID_RE, Settings
from account.context import Identity
from account.errors import Conflict
from account.links import service as link_service
from adapters.email.addresses import AddressError, parse_mailbox
from adapters.email.models import MailParticipant
from adapters.email.outbound import Mailer
from exchange.signing import generate_key, load_key_file, write_key_file

_TRANSLIT = str.maketrans(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "abvgdeejziiklmnoprstufhccss_y_eua",
)


class ParticipantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=10, max_length=8_000)
    name: str = Field(min_length=1, max_length=200)
    emails: list[str] = Field(min_length=1, max_length=10)
    language: str = Field(default="en", pattern=r"^(en|ru)$")

    @field_validator("emails")
    @classmethod
    def _emails(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            try:
                box = parse_mailbox(value)
            except AddressError as exc:
                raise ValueError(f"not a usable e-mail address: {value[:100]!r}") from exc
            address = box.address.lower()
            if address not in out:
                out.append(address)
        return out

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("name must not be blank")
        return value


def keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "hosted"


def key_path(settings: Settings, account_id: str) -> Path:
    return keys_dir(settings) / f"{account_id}.key"


def slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.lower().translate(_TRANSLIT))
    text = text.encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:40].strip("-") or "participant"


def new_account_id(session: Session, name: str) -> str:
    """``<slug of the name>-<4 hex>``: readable, and unique on a broker shared with others."""
    for _ in range(20):
        candidate = f"{slug(name)}-{secrets.token_hex(2)}"
        taken = session.exec(
            select(MailParticipant.id).where(MailParticipant.account_id == candidate)
        ).first()
        if ACCOUNT_ID_RE.match(candidate) and taken is None:
            return candidate
    raise Conflict("could not find a free account id for this name")


def load_identity(settings: Settings, participant: MailParticipant) -> Identity:
    return Identity(
        account_id=participant.account_id,
        label=participant.name,
        key=load_key_file(key_path(settings, participant.account_id)),
    )


def create(
    *,
    session: Session,
    settings: Settings,
    adapter: Identity,
    mailer: Mailer,
    participant_in: ParticipantCreate,
) -> tuple[MailParticipant, Identity]:
    """Create the hosted account, accept the invitation as it, queue the welcome mail."""
    claims = link_service.read_invitation(participant_in.token)  # Invalid: a 422 answer
    account_id = new_account_id(session, participant_in.name)
    path = key_path(settings, account_id)
    if path.exists():
        raise Conflict("a key for this account exists already")
    key = generate_key()
    identity = Identity(account_id=account_id, label=participant_in.name, key=key)
    # The adapter's API serves the hosted account's large attachments to the upstream.
    link = link_service.accept_invitation(
        session=session,
        identity=identity,
        token=participant_in.token,
        api_url=settings.public_url or None,
    )
    participant = MailParticipant(
        account_id=account_id,
        adapter_account=adapter.account_id,
        name=participant_in.name,
        emails=participant_in.emails,
        language=participant_in.language,
        upstream_account=link.peer_account,
        link_id=link.id,
    )
    session.add(participant)
    session.flush()
    mailer.welcome(session, participant, link.peer_label or claims.upstream)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_key_file(path, key)
    return participant, identity


def to_public(participant: MailParticipant) -> dict[str, object]:
    return {
        "account_id": participant.account_id,
        "name": participant.name,
        "emails": participant.emails,
        "language": participant.language,
        "upstream": participant.upstream_account,
        "link_id": participant.link_id,
        "undeliverable": participant.undeliverable,
    }
