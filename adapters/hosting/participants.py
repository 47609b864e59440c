"""Participants of any adapter: the common columns, account ids, key files, redeeming invitations.

``register`` redeems an upstream's invitation for a new participant: it derives a unique
``account_id`` from the name, makes the account's key, and accepts the link as that account (the
ordinary ``link.accept`` handshake through the outbox), all in the caller's transaction. The
adapter then adds its participant row (``Registration.columns``) and whatever its channel needs,
and writes the key file last (``Registration.save_key``), so a failure leaves no key behind.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlmodel import Field, Session, SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar

from account.config import ACCOUNT_ID_RE, Settings
from account.context import Identity
from account.errors import Conflict, NotFound
from account.links import service as link_service
from account.links.models import Link
from exchange.clock import utcnow
from exchange.signing import generate_key, load_key_file, write_key_file

_TRANSLIT = str.maketrans(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "abvgdeejziiklmnoprstufhccss_y_eua",
)


class HostedParticipant(SQLModel):
    """The columns every adapter's participant table has (each adapter adds its own)."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(unique=True, max_length=63)
    adapter_account: str = Field(index=True, max_length=63)
    name: str = Field(max_length=200)
    upstream_account: str | None = Field(default=None, max_length=63)
    link_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow)


P = TypeVar("P", bound=HostedParticipant)


class JoinRequest(BaseModel):
    """What every ``POST`` creating a participant carries: the invitation and a display name."""

    model_config = ConfigDict(extra="forbid")

    token: str = PydanticField(min_length=10, max_length=8_000)
    name: str = PydanticField(min_length=1, max_length=200)

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


def new_account_id(session: Session, model: type[HostedParticipant], name: str) -> str:
    """``<slug of the name>-<4 hex>``: readable, and unique on a broker shared with others."""
    for _ in range(20):
        candidate = f"{slug(name)}-{secrets.token_hex(2)}"
        taken = session.exec(select(model.account_id).where(model.account_id == candidate)).first()
        if ACCOUNT_ID_RE.match(candidate) and taken is None:
            return candidate
    raise Conflict("could not find a free account id for this name")


def load_identity(settings: Settings, participant: HostedParticipant) -> Identity:
    return Identity(
        account_id=participant.account_id,
        label=participant.name,
        key=load_key_file(key_path(settings, participant.account_id)),
    )


def of_adapter(model: type[P], adapter_account: str) -> SelectOfScalar[P]:
    """``SELECT`` of the participants hosted by the adapter account ``adapter_account``."""
    return select(model).where(model.adapter_account == adapter_account)


def get(session: Session, model: type[P], *, adapter: Identity, account_id: str) -> P:
    row = session.exec(
        of_adapter(model, adapter.account_id).where(model.account_id == account_id)
    ).first()
    if row is None:
        raise NotFound("participant not found")
    return row


@dataclass(frozen=True)
class Registration:
    """A hosted account made for an invitation, its link accepted; the key not written yet."""

    identity: Identity
    link: Link
    claims: link_service.InvitationClaims
    key_file: Path

    def columns(self, adapter: Identity, name: str) -> dict[str, Any]:
        """The participant row's common columns."""
        return {
            "account_id": self.identity.account_id,
            "adapter_account": adapter.account_id,
            "name": name,
            "upstream_account": self.link.peer_account,
            "link_id": self.link.id,
        }

    def save_key(self) -> None:
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        write_key_file(self.key_file, self.identity.key)


def register(
    *,
    session: Session,
    settings: Settings,
    model: type[HostedParticipant],
    name: str,
    token: str,
    api_url: str | None,
) -> Registration:
    """Make the hosted account and accept the invitation as it (``Invalid``: a 422 answer)."""
    claims = link_service.read_invitation(token)
    account_id = new_account_id(session, model, name)
    path = key_path(settings, account_id)
    if path.exists():
        raise Conflict("a key for this account exists already")
    identity = Identity(account_id=account_id, label=name, key=generate_key())
    link = link_service.accept_invitation(
        session=session, identity=identity, token=token, api_url=api_url
    )
    return Registration(identity=identity, link=link, claims=claims, key_file=path)


def common_public(participant: HostedParticipant) -> dict[str, Any]:
    """The fields of a participant every adapter's API shows."""
    return {
        "account_id": participant.account_id,
        "name": participant.name,
        "upstream": participant.upstream_account,
        "link_id": participant.link_id,
    }
