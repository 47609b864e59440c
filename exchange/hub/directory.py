"""The directory of accounts, and who signed a request (key pinning on first registration).

A node registers its account with a request signed by the account's key. The first
registration pins that key; afterwards every request of the account, including a change of
key, name, transport or URL, must verify with the pinned key (a key change is therefore signed
by the old key, as ``link.rekey`` is on the wire).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from exchange.clock import aware, instant, utcnow
from exchange.hub.errors import Invalid, NotFound, Unauthorized
from exchange.hub.models import DirectoryEntry, HubInvitation, RequestNonce
from exchange.hub.requests import (
    BadRequestToken,
    RequestClaims,
    unverified_issuer,
    verify_request,
)
from exchange.signing import kid_of, public_key_from_b64

ACCOUNT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
HTTP_URL_RE = re.compile(r"^https?://[^\s/@?#]+(/[^\s?#]*)?$")
TRANSPORTS = ("amqp", "email", "webhook")


class Registration(BaseModel):
    """What a node tells the hub about its account (the account id is the token's ``iss``)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=43, max_length=43)
    transport: str = "amqp"
    api_url: str | None = Field(default=None, max_length=500)

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: str) -> str:
        if value not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip().rstrip("/")
        if not HTTP_URL_RE.match(value):
            raise ValueError("api_url must be an absolute http(s) URL without credentials")
        return value

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        public_key_from_b64(value)  # ValueError → 422
        return value


@dataclass(frozen=True)
class SignedBy:
    account: str
    entry: DirectoryEntry | None


def authenticate(
    session: Session,
    *,
    token: str,
    method: str,
    path: str,
    body: bytes,
    registration_key: str | None = None,
) -> SignedBy:
    """The account that signed this request; ``Unauthorized`` for anything wrong.

    An unknown account is accepted only with ``registration_key`` (a first registration, whose
    body carries the key); otherwise the pinned key must verify.
    """
    try:
        iss, _kid = unverified_issuer(token)
        if not ACCOUNT_ID_RE.match(iss):
            raise BadRequestToken("bad issuer")
        entry = session.get(DirectoryEntry, iss)
        if entry is not None:
            key_text = entry.public_key
        elif registration_key is not None:
            key_text = registration_key
        else:
            raise BadRequestToken("account not registered")
        claims = verify_request(
            token, key=public_key_from_b64(key_text), method=method, path=path, body=body
        )
    except (BadRequestToken, ValueError) as exc:
        raise Unauthorized(str(exc) or "invalid request token") from exc
    _use_nonce(session, claims)
    return SignedBy(account=iss, entry=entry)


def _use_nonce(session: Session, claims: RequestClaims) -> None:
    """Refuse a ``jti`` seen before; forget expired ones."""
    now = utcnow()
    session.exec(delete(RequestNonce).where(col(RequestNonce.expires_at) < now))
    if session.get(RequestNonce, claims.jti) is not None:
        raise Unauthorized("request token already used")
    expires = datetime.fromtimestamp(claims.expires_at, tz=now.tzinfo) + timedelta(seconds=60)
    session.add(RequestNonce(jti=claims.jti, expires_at=expires))
    session.flush()


def register(session: Session, *, signer: SignedBy, registration: Registration) -> DirectoryEntry:
    """Create or update the signer's entry (the request already verified with the pinned key)."""
    entry = signer.entry
    kid = kid_of(public_key_from_b64(registration.public_key))
    if entry is None:
        entry = DirectoryEntry(
            account_id=signer.account,
            display_name=registration.display_name,
            public_key=registration.public_key,
            kid=kid,
            transport=registration.transport,
            api_url=registration.api_url,
        )
    else:
        entry.display_name = registration.display_name
        entry.public_key = registration.public_key
        entry.kid = kid
        entry.transport = registration.transport
        entry.api_url = registration.api_url
        entry.updated_at = utcnow()
    session.add(entry)
    session.flush()
    return entry


def remove(session: Session, *, account_id: str) -> None:
    """Delete an entry and every pending invitation from or to it."""
    entry = session.get(DirectoryEntry, account_id)
    if entry is None:
        raise NotFound("no such account in the directory")
    session.exec(
        delete(HubInvitation).where(
            or_(
                col(HubInvitation.from_account) == account_id,
                col(HubInvitation.to_account) == account_id,
            )
        )
    )
    session.delete(entry)
    session.flush()


def search(session: Session, *, query: str = "", limit: int = 50) -> list[DirectoryEntry]:
    """Entries whose id or display name contains ``query`` (case-insensitive), by name."""
    if len(query) > 100:
        raise Invalid("query too long")
    statement = select(DirectoryEntry)
    if query:
        pattern = "%" + query.lower().replace("%", "").replace("_", "") + "%"
        statement = statement.where(
            or_(
                func.lower(DirectoryEntry.account_id).like(pattern),
                func.lower(DirectoryEntry.display_name).like(pattern),
            )
        )
    statement = statement.order_by(col(DirectoryEntry.display_name)).limit(max(1, min(limit, 200)))
    return list(session.exec(statement).all())


def accounts(session: Session, *, transport: str | None = None) -> list[str]:
    statement = select(DirectoryEntry.account_id).order_by(col(DirectoryEntry.account_id))
    if transport is not None:
        statement = statement.where(DirectoryEntry.transport == transport)
    return list(session.exec(statement).all())


def to_public(entry: DirectoryEntry) -> dict[str, object]:
    return {
        "account_id": entry.account_id,
        "display_name": entry.display_name,
        "public_key": entry.public_key,
        "kid": entry.kid,
        "transport": entry.transport,
        "api_url": entry.api_url,
        "registered_at": instant(aware(entry.registered_at)),
        "updated_at": instant(aware(entry.updated_at)),
    }
