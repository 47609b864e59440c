"""Invitation delivery: a node hands the hub an invitation token for another account, whose
node fetches it (pull, with a signed request) and acknowledges it once its admin accepted it.

The hub checks that the token is an invitation of the sender, signed with the sender's pinned
key and unexpired, and that the recipient is in the directory. It hands a token only to the
account it is addressed to. Tokens are stored as they came: whoever reads the hub's database
could accept them, so the database is an operator secret (docs/operator-guide.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import jwt
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from exchange.clock import aware, instant, utcnow
from exchange.hub.directory import ACCOUNT_ID_RE
from exchange.hub.errors import Invalid, NotFound
from exchange.hub.models import DirectoryEntry, HubInvitation
from exchange.signing import public_key_from_b64

INVITATION_AUDIENCE = "tix:link-invitation"
INVITATION_TYP = "tix-invite+jwt"
MAX_TOKEN = 8_000
MAX_PENDING_PER_PAIR = 5


class InvitationSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=2, max_length=63)
    token: str = Field(min_length=20, max_length=MAX_TOKEN)
    note: str = Field(default="", max_length=500)


def _check_token(token: str, *, sender: DirectoryEntry) -> datetime:
    """The token's expiry if it is the sender's own valid invitation; ``Invalid`` otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Invalid("not an invitation token") from exc
    if header.get("alg") != "EdDSA" or header.get("typ") != INVITATION_TYP or "crit" in header:
        raise Invalid("not an invitation token")
    if header.get("kid") != sender.kid:
        raise Invalid("invitation not signed with the sender's registered key")
    try:
        claims = jwt.decode(
            token,
            key=public_key_from_b64(sender.public_key),
            algorithms=["EdDSA"],
            audience=INVITATION_AUDIENCE,
            issuer=sender.account_id,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        raise Invalid("invitation expired") from exc
    except jwt.PyJWTError as exc:
        raise Invalid("invitation signature or claims invalid") from exc
    if claims.get("pub") != sender.public_key:
        raise Invalid("invitation carries another key than the sender's registered one")
    return datetime.fromtimestamp(int(claims["exp"]), tz=UTC)


def send(session: Session, *, sender: DirectoryEntry, send_in: InvitationSend) -> HubInvitation:
    """Queue an invitation for ``send_in.to``."""
    if not ACCOUNT_ID_RE.match(send_in.to):
        raise Invalid("bad account id")
    if send_in.to == sender.account_id:
        raise Invalid("an account cannot invite itself")
    if session.get(DirectoryEntry, send_in.to) is None:
        raise NotFound(f"{send_in.to} is not in the directory")
    expires_at = _check_token(send_in.token, sender=sender)
    pending = session.exec(
        select(HubInvitation).where(
            HubInvitation.from_account == sender.account_id,
            HubInvitation.to_account == send_in.to,
            HubInvitation.state == "pending",
        )
    ).all()
    if len(pending) >= MAX_PENDING_PER_PAIR:
        raise Invalid(f"{MAX_PENDING_PER_PAIR} invitations to {send_in.to} are already pending")
    invitation = HubInvitation(
        id=str(uuid.uuid4()),
        from_account=sender.account_id,
        to_account=send_in.to,
        token=send_in.token,
        note=send_in.note,
        expires_at=expires_at,
    )
    session.add(invitation)
    session.flush()
    return invitation


def pending_for(session: Session, *, account: str) -> list[HubInvitation]:
    """Unexpired invitations waiting for ``account``, oldest first."""
    now = utcnow()
    rows = session.exec(
        select(HubInvitation)
        .where(HubInvitation.to_account == account, HubInvitation.state == "pending")
        .order_by(col(HubInvitation.created_at))
        .limit(200)
    ).all()
    return [row for row in rows if aware(row.expires_at) > now]


def acknowledge(session: Session, *, account: str, invitation_id: str) -> None:
    """The recipient's node took (accepted or dismissed) the invitation: forget its token."""
    invitation = session.get(HubInvitation, invitation_id)
    if invitation is None or invitation.to_account != account:
        raise NotFound("invitation not found")
    session.delete(invitation)
    session.flush()


def to_public(invitation: HubInvitation, labels: dict[str, str]) -> dict[str, object]:
    return {
        "id": invitation.id,
        "from": invitation.from_account,
        "from_label": labels.get(invitation.from_account, invitation.from_account),
        "to": invitation.to_account,
        "token": invitation.token,
        "note": invitation.note,
        "created_at": instant(aware(invitation.created_at)),
        "expires_at": instant(aware(invitation.expires_at)),
    }
