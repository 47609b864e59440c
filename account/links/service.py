"""Links by signed single-use invitation, key pinning and suspension (ARCHITECTURE §3).

The upstream's admin creates an invitation: a JWT signed EdDSA with the upstream's key that
carries its account id, public key, ``kid``, proposed contract and expiry. The downstream's
admin accepts it: the token's signature is checked against the key it carries (the token itself
is the out-of-band trust anchor), the upstream's key is pinned, and a ``link.accept`` signed by
the downstream travels back with the token and the downstream's key. The upstream checks that the
token is one of its own, unused and unexpired, pins the downstream's key and marks the
invitation used. From then on only those pinned keys are accepted on the link.

Each side may also tell the other where its HTTP API is reached (the invitation's ``url`` claim,
``link.accept``'s ``api_url``): large attachments are fetched there by digest. Only absolute
http(s) URLs are kept; which hosts a node may fetch from is not restricted here, so production
deployments should put an allow-list (egress proxy or firewall) in front of outgoing fetches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlmodel import Session, col, select

from account.context import Identity
from account.errors import Conflict, Invalid, NotFound
from account.links.models import Contract, Invitation, InvitationCreate, Link, LinkPatch
from account.messaging import outbox
from exchange.clock import aware, instant, utcnow
from exchange.errors import RejectedMessage
from exchange.signing import kid_of, public_key_from_b64
from schemas.messages import LinkAccept, LinkSuspend

INVITATION_AUDIENCE = "tix:link-invitation"
INVITATION_TYP = "tix-invite+jwt"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]


@dataclass(frozen=True)
class InvitationClaims:
    invitation_id: str
    link_id: str
    upstream: str
    upstream_label: str
    public_key: str
    kid: str
    contract: Contract
    api_url: str | None = None


def create_invitation(
    *,
    session: Session,
    identity: Identity,
    invitation_in: InvitationCreate,
    api_url: str | None = None,
) -> tuple[Invitation, str]:
    """Record an open invitation and return it with its signed token.

    ``api_url`` is this node's public base URL (``Settings.public_url``), carried as ``url``.
    """
    now = utcnow()
    invitation = Invitation(
        id=str(uuid.uuid4()),
        account_id=identity.account_id,
        link_id=str(uuid.uuid4()),
        contract=invitation_in.contract.model_dump(),
        note=invitation_in.note,
        expires_at=now + timedelta(days=invitation_in.expires_in_days),
    )
    session.add(invitation)
    session.flush()
    claims = {
        "iss": identity.account_id,
        "aud": INVITATION_AUDIENCE,
        "sub": invitation.link_id,
        "jti": invitation.id,
        "iat": _epoch(now),
        "exp": _epoch(invitation.expires_at),
        "name": identity.label,
        "pub": identity.public_key,
        "kid": identity.kid,
        "contract": invitation.contract,
    }
    if api_url:
        claims["url"] = _api_url(api_url)
    token = jwt.encode(
        claims,
        identity.key,
        algorithm="EdDSA",
        headers={"kid": identity.kid, "typ": INVITATION_TYP},
    )
    return invitation, token


def _epoch(moment: datetime) -> int:
    """Seconds since the epoch."""
    return int(aware(moment).timestamp())


def read_invitation(token: str, *, expected_issuer_key: Any | None = None) -> InvitationClaims:
    """Verify an invitation token and return its claims; ``Invalid`` for anything wrong.

    Without ``expected_issuer_key`` the token is checked against the key it carries (the
    downstream's view); with it, against the upstream's own key (the upstream's view).
    """
    if len(token) > 8_000:
        raise Invalid("invitation token too long")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Invalid("not an invitation token") from exc
    if header.get("alg") != "EdDSA" or header.get("typ") != INVITATION_TYP or "crit" in header:
        raise Invalid("not an invitation token")
    try:
        carried = public_key_from_b64(str(unverified.get("pub", "")))
    except ValueError as exc:
        raise Invalid("invitation carries no valid key") from exc
    if kid_of(carried) != unverified.get("kid") or header.get("kid") != unverified.get("kid"):
        raise Invalid("invitation key id does not match its key")
    key = expected_issuer_key or carried
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["EdDSA"],
            audience=INVITATION_AUDIENCE,
            options={"require": _REQUIRED},
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        raise Invalid("invitation expired") from exc
    except jwt.PyJWTError as exc:
        raise Invalid("invitation signature or claims invalid") from exc
    try:
        contract = Contract.model_validate(claims.get("contract") or {})
        return InvitationClaims(
            invitation_id=str(uuid.UUID(str(claims["jti"]))),
            link_id=str(uuid.UUID(str(claims["sub"]))),
            upstream=_account(str(claims["iss"])),
            upstream_label=str(claims.get("name") or claims["iss"])[:200],
            public_key=str(claims["pub"]),
            kid=str(claims["kid"]),
            contract=contract,
            api_url=_api_url(str(claims["url"])) if claims.get("url") else None,
        )
    except (ValueError, KeyError) as exc:
        raise Invalid("invitation claims malformed") from exc


def _api_url(value: str) -> str:
    """A partner API base URL: absolute http(s), no credentials, query or fragment."""
    from account.config import HTTP_URL_RE

    value = value.strip().rstrip("/")
    if len(value) > 500 or not HTTP_URL_RE.match(value):
        raise ValueError("bad api url")
    return value


def _account(value: str) -> str:
    from account.config import ACCOUNT_ID_RE

    if not ACCOUNT_ID_RE.match(value):
        raise ValueError("bad account id")
    return value


def accept_invitation(
    *, session: Session, identity: Identity, token: str, api_url: str | None = None
) -> Link:
    """Downstream side: pin the upstream's key, create the link, send ``link.accept``.

    ``api_url`` is this node's public base URL (``Settings.public_url``), sent to the upstream.
    """
    claims = read_invitation(token)
    if claims.upstream == identity.account_id:
        raise Invalid("an account cannot link to itself")
    existing = session.exec(
        select(Link).where(
            Link.account_id == identity.account_id,
            Link.peer_account == claims.upstream,
            Link.direction == "upstream",
        )
    ).first()
    if existing is not None:
        raise Conflict(f"already linked to {claims.upstream}")
    if session.get(Link, claims.link_id) is not None:
        raise Conflict("invitation already used")
    link = Link(
        id=claims.link_id,
        account_id=identity.account_id,
        peer_account=claims.upstream,
        peer_label=claims.upstream_label,
        direction="upstream",
        state="active",
        peer_public_key=claims.public_key,
        peer_kid=claims.kid,
        contract=claims.contract.model_dump(),
        peer_api_url=claims.api_url,
        seq_out=1,
    )
    session.add(link)
    session.flush()
    outbox.enqueue(
        session=session,
        identity=identity,
        to=claims.upstream,
        link_id=link.id,
        message_type="link.accept",
        subject=link.id,
        seq=1,
        body=LinkAccept(
            token=token,
            public_key=identity.public_key,
            kid=identity.kid,
            display_name=identity.label,
            api_url=_api_url(api_url) if api_url else None,
        ),
    )
    return link


def apply_link_accept(
    *, session: Session, identity: Identity, sender: str, link_id: str, body: LinkAccept
) -> Link:
    """Upstream side: the invitation must be ours, open and unexpired; pin the sender's key.

    The envelope's signature has already been checked against ``body.public_key``.
    """
    try:
        claims = read_invitation(body.token, expected_issuer_key=identity.key.public_key())
    except Invalid as exc:
        reason = (
            "invitation_expired" if exc.detail == "invitation expired" else "invitation_invalid"
        )
        raise RejectedMessage(reason, exc.detail) from exc
    if claims.upstream != identity.account_id or claims.link_id != link_id:
        raise RejectedMessage("invitation_invalid", "token does not match this link")
    invitation = session.exec(
        select(Invitation).where(Invitation.id == claims.invitation_id).with_for_update()
    ).first()
    if invitation is None or invitation.account_id != identity.account_id:
        raise RejectedMessage("invitation_invalid", "unknown invitation")
    if invitation.state != "open":
        raise RejectedMessage("invitation_used", f"invitation is {invitation.state}")
    if aware(invitation.expires_at) < utcnow():
        raise RejectedMessage("invitation_expired")
    duplicate = session.exec(
        select(Link).where(
            Link.account_id == identity.account_id,
            Link.peer_account == sender,
            Link.direction == "downstream",
        )
    ).first()
    if duplicate is not None:
        raise RejectedMessage("already_linked", sender)
    link = Link(
        id=link_id,
        account_id=identity.account_id,
        peer_account=sender,
        peer_label=body.display_name,
        direction="downstream",
        state="active",
        peer_public_key=body.public_key,
        peer_kid=body.kid,
        peer_api_url=body.api_url.rstrip("/") if body.api_url else None,
        contract=invitation.contract,
        seq_in=1,
    )
    invitation.state = "used"
    invitation.used_by = sender
    session.add(invitation)
    session.add(link)
    session.flush()
    return link


def list_links(*, session: Session, account_id: str) -> list[Link]:
    statement = select(Link).where(Link.account_id == account_id).order_by(col(Link.created_at))
    return list(session.exec(statement).all())


def get(*, session: Session, account_id: str, link_id: str) -> Link:
    link = session.get(Link, link_id)
    if link is None or link.account_id != account_id:
        raise NotFound("link not found")
    return link


def active_link_to(*, session: Session, account_id: str, partner: str, direction: str) -> Link:
    """The active link to ``partner`` in that direction, or ``NotFound`` / ``Conflict``."""
    link = session.exec(
        select(Link).where(
            Link.account_id == account_id,
            Link.peer_account == partner,
            Link.direction == direction,
        )
    ).first()
    if link is None:
        raise NotFound(f"no link to {partner}")
    if link.state != "active":
        raise Conflict(f"the link to {partner} is {link.state}")
    return link


def patch(*, session: Session, identity: Identity, link: Link, patch_in: LinkPatch) -> Link:
    """Suspend or resume a link (telling the partner), or change its contract locally.

    Only the side that suspended a link can resume it. Contract changes are partial and stay
    on this node: the wire protocol has no message for them yet (see docs/protocol.md).
    """
    if patch_in.contract is not None:
        changes = patch_in.contract.model_dump(exclude_none=True)
        link.contract = Contract.model_validate(link.contract | changes).model_dump()
    if patch_in.state is not None and patch_in.state != link.state:
        if patch_in.state == "active" and link.suspended_by == "peer":
            raise Conflict(f"{link.peer_account} suspended this link; only they can resume it")
        link.state = patch_in.state
        link.suspended_by = "local" if patch_in.state == "suspended" else None
        session.add(link)
        outbox.enqueue_next(
            session=session,
            identity=identity,
            counter=Link,
            row_id=link.id,
            to=link.peer_account,
            link_id=link.id,
            message_type="link.suspend",
            subject=link.id,
            body=LinkSuspend(suspended=patch_in.state == "suspended"),
        )
    link.updated_at = utcnow()
    session.add(link)
    session.flush()
    return link


def apply_link_suspend(*, session: Session, link: Link, body: LinkSuspend) -> bool:
    """Apply the partner's suspend or resume; return whether the link became active.

    A partner can lift only a suspension it made; one we made stays until we lift it.
    """
    if body.suspended:
        if link.state != "suspended":
            link.state, link.suspended_by = "suspended", "peer"
    elif link.state == "suspended" and link.suspended_by == "peer":
        link.state, link.suspended_by = "active", None
    else:
        return False
    link.updated_at = utcnow()
    session.add(link)
    return link.state == "active"


def to_public(link: Link) -> dict[str, Any]:
    return {
        "id": link.id,
        "account": link.account_id,
        "partner": link.peer_account,
        "partner_label": link.peer_label,
        "direction": link.direction,
        "state": link.state,
        "suspended_by": link.suspended_by,
        "partner_kid": link.peer_kid,
        "partner_api_url": link.peer_api_url,
        "contract": link.contract,
        "created_at": instant(link.created_at),
    }


__all__ = [
    "InvitationClaims",
    "accept_invitation",
    "active_link_to",
    "apply_link_accept",
    "apply_link_suspend",
    "create_invitation",
    "get",
    "list_links",
    "patch",
    "read_invitation",
    "to_public",
]
