"""Invitation delivery: a node hands the hub an invitation token for another account, whose
node fetches it (pull, with a signed request) and reports its admin's answer (accepted, or
declined with an optional reason); the sender's node fetches the answers to what it sent
(``sent_by``) and then lets the hub forget them.

States: ``pending`` until the recipient answers (``expired`` is reported for a pending one
past its expiry), then ``accepted`` | ``declined`` | ``taken`` (a node of an older version
dismissed it with ``DELETE`` and said neither). The token is dropped as soon as the answer
comes: only the answer waits for the sender. An answered or expired row the sender never
collects goes after ``KEEP_ANSWERED_DAYS``.

The hub checks that the token is an invitation of the sender, signed with the sender's pinned
key and unexpired, and that the recipient is in the directory. It hands a token only to the
account it is addressed to. Tokens are stored as they came: whoever reads the hub's database
could accept them, so the database is an operator secret (docs/operator-guide.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, or_
from sqlmodel import Session, col, select

from exchange.clock import aware, instant, utcnow
from exchange.hub.directory import ACCOUNT_ID_RE
from exchange.hub.errors import Conflict, Invalid, NotFound
from exchange.hub.models import DirectoryEntry, HubInvitation
from exchange.signing import public_key_from_b64

INVITATION_AUDIENCE = "tix:link-invitation"
INVITATION_TYP = "tix-invite+jwt"
MAX_TOKEN = 8_000
MAX_PENDING_PER_PAIR = 5
KEEP_ANSWERED_DAYS = 90
MAX_LISTED = 200
ANSWERS = ("accepted", "declined")


class InvitationSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=2, max_length=63)
    token: str = Field(min_length=20, max_length=MAX_TOKEN)
    note: str = Field(default="", max_length=500)


class Decision(BaseModel):
    """The recipient's answer to an invitation."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["accepted", "declined"]
    reason: str = Field(default="", max_length=500)


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
        .limit(MAX_LISTED)
    ).all()
    return [row for row in rows if aware(row.expires_at) > now]


def _addressed_to(session: Session, *, account: str, invitation_id: str) -> HubInvitation:
    invitation = session.get(HubInvitation, invitation_id)
    if invitation is None or invitation.to_account != account:
        raise NotFound("invitation not found")
    return invitation


def decide(
    session: Session, *, account: str, invitation_id: str, decision: Decision
) -> HubInvitation:
    """Record the recipient's answer and drop the token. Repeating the same answer (the
    node's first call got no reply) changes nothing; another answer is a conflict."""
    invitation = _addressed_to(session, account=account, invitation_id=invitation_id)
    if invitation.state != "pending":
        if invitation.state == decision.decision:
            return invitation
        raise Conflict(f"invitation already {invitation.state}")
    invitation.state = decision.decision
    invitation.reason = decision.reason.strip() if decision.decision == "declined" else ""
    invitation.decided_at = utcnow()
    invitation.token = ""
    session.add(invitation)
    session.flush()
    return invitation


def dismiss(session: Session, *, account: str, invitation_id: str) -> None:
    """``DELETE`` of an invitation by one of its two accounts.

    The recipient (a node that does not report answers) takes a pending invitation: the
    token goes, and the sender learns that it was ``taken``. The sender withdraws a pending
    one (the recipient no longer sees it) or forgets an answered or expired one it has read.
    """
    invitation = session.get(HubInvitation, invitation_id)
    if invitation is None or account not in (invitation.from_account, invitation.to_account):
        raise NotFound("invitation not found")
    if account == invitation.from_account:
        session.delete(invitation)
    elif invitation.state == "pending":
        invitation.state = "taken"
        invitation.decided_at = utcnow()
        invitation.token = ""
        session.add(invitation)
    else:
        raise NotFound("invitation not found")
    session.flush()


def state_of(invitation: HubInvitation, now: datetime | None = None) -> str:
    """The state a sender sees: ``expired`` for a pending invitation past its expiry."""
    if invitation.state == "pending" and aware(invitation.expires_at) <= (now or utcnow()):
        return "expired"
    return invitation.state


def prune(session: Session) -> int:
    """Forget answers and expired invitations older than ``KEEP_ANSWERED_DAYS``."""
    cutoff = utcnow() - timedelta(days=KEEP_ANSWERED_DAYS)
    result = session.exec(
        delete(HubInvitation).where(
            or_(
                and_(
                    col(HubInvitation.decided_at).is_not(None),
                    col(HubInvitation.decided_at) < cutoff,
                ),
                and_(
                    col(HubInvitation.state) == "pending",
                    col(HubInvitation.expires_at) < cutoff,
                ),
            )
        )
    )
    return int(result.rowcount or 0)


def sent_by(session: Session, *, account: str) -> list[HubInvitation]:
    """What ``account`` sent and the hub still holds, newest first."""
    rows = session.exec(
        select(HubInvitation)
        .where(HubInvitation.from_account == account)
        .order_by(col(HubInvitation.created_at).desc(), col(HubInvitation.id))
        .limit(MAX_LISTED)
    ).all()
    return list(rows)


def to_sender(invitation: HubInvitation, labels: dict[str, str]) -> dict[str, object]:
    """An invitation as its sender sees it: state and answer, never the token."""
    decided = invitation.decided_at
    return {
        "id": invitation.id,
        "to": invitation.to_account,
        "to_label": labels.get(invitation.to_account, invitation.to_account),
        "note": invitation.note,
        "state": state_of(invitation),
        "reason": invitation.reason,
        "created_at": instant(aware(invitation.created_at)),
        "expires_at": instant(aware(invitation.expires_at)),
        "decided_at": instant(aware(decided)) if decided is not None else None,
    }


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
