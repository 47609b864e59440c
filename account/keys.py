"""Key rotation: ``tix keys rotate`` on the sending side, ``link.rekey`` on the receiving side.

Sending: a new Ed25519 key is made, and a ``link.rekey`` carrying its public key is written to
the outbox for every link of the account, **signed with the old key**, the one each partner has
pinned, in one transaction. Only after that commit does the new key replace the key file (the
old one is kept beside it as ``<key file>.<old kid>.retired``). The running node keeps signing
with the key it loaded until it is restarted; partners accept that key for the overlap window,
so restart the node within it.

Receiving: a rekey must come over the link, from its counterpart, signed with the key pinned
now (a previous key still inside its overlap cannot rotate the link: a leaked old key must not
be able to take it over). Then the new key is pinned and the old one becomes the previous key,
accepted until the overlap ends (capped at ``MAX_OVERLAP``); after that only the new key is
accepted (``account.messaging.inbox._pinned_key``). A rekey is also accepted over a suspended
link, so a partner never ends up with a key nobody can sign with any more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from account.config import Settings
from account.context import Identity
from account.db import make_engine
from account.links.models import Link
from account.messaging import outbox
from exchange.clock import utcnow
from exchange.errors import RejectedMessage
from exchange.signing import (
    generate_key,
    kid_of,
    load_key_file,
    public_key_b64,
    public_key_from_b64,
    write_key_file,
)
from schemas.messages import LinkRekey

DEFAULT_OVERLAP_SECONDS = 86_400
# The longest overlap a receiver grants, whatever the sender asks for.
MAX_OVERLAP = timedelta(days=30)


class RotationError(RuntimeError):
    """The rotation could not start; nothing was changed."""


@dataclass(frozen=True)
class Rotation:
    old_kid: str
    new_kid: str
    partners: list[str]
    retired_key: Path


def pending_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".new")


def rotate(settings: Settings, *, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS) -> Rotation:
    """Make a new key, tell every partner with a ``link.rekey`` signed by the old one, switch."""
    return rotate_key(
        db_url=settings.db_url,
        account_id=settings.account_id,
        label=settings.label,
        key_path=settings.key_path,
        overlap_seconds=overlap_seconds,
    )


def rotate_key(
    *, db_url: str, account_id: str, label: str, key_path: Path, overlap_seconds: int
) -> Rotation:
    """``rotate`` for any account of the database at ``db_url`` whose key is at ``key_path``.

    The node's own account, or one an adapter hosts (``adapters.hosting.keys``).
    """
    if not 0 <= overlap_seconds <= MAX_OVERLAP.total_seconds():
        raise RotationError(f"the overlap must be 0 to {int(MAX_OVERLAP.total_seconds())} s")
    pending = pending_key_path(key_path)
    if pending.exists():
        raise RotationError(
            f"{pending} is left from a rotation that did not finish; if `tix outbox list "
            f"--state sent` shows its link.rekey messages, move it over {key_path}, else delete it"
        )
    old = load_key_file(key_path)
    new = generate_key()
    old_kid, new_kid = kid_of(old.public_key()), kid_of(new.public_key())
    retired = key_path.with_name(f"{key_path.name}.{old_kid}.retired")
    write_key_file(pending, new)
    try:
        if not retired.exists():
            write_key_file(retired, old)
        identity = Identity(account_id=account_id, label=label, key=old)
        body = LinkRekey(
            public_key=public_key_b64(new), kid=new_kid, overlap_seconds=overlap_seconds
        )
        engine = make_engine(db_url)
        try:
            with Session(engine) as session:
                links = session.exec(
                    select(Link).where(Link.account_id == account_id).order_by(col(Link.created_at))
                ).all()
                for link in links:
                    outbox.enqueue_next(
                        session=session,
                        identity=identity,
                        counter=Link,
                        row_id=link.id,
                        to=link.peer_account,
                        link_id=link.id,
                        message_type="link.rekey",
                        subject=link.id,
                        body=body,
                    )
                partners = [link.peer_account for link in links]
                session.commit()
        finally:
            engine.dispose()
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    # Committed: partners will pin the new key, so from now on it is ours.
    os.replace(pending, key_path)
    return Rotation(old_kid=old_kid, new_kid=new_kid, partners=partners, retired_key=retired)


def apply_rekey(link: Link, body: LinkRekey, *, signed_by: str) -> bool:
    """Pin the partner's new key on ``link``; return whether anything changed.

    The envelope's signature has already been checked against a key pinned for ``signed_by``.
    """
    if signed_by != link.peer_kid:
        raise RejectedMessage("unknown_kid", "a rekey must be signed with the current key")
    try:
        public = public_key_from_b64(body.public_key)
    except ValueError as exc:
        raise RejectedMessage("schema", "rekey public_key") from exc
    if kid_of(public) != body.kid:
        raise RejectedMessage("schema", "rekey kid does not match its key")
    if body.kid == link.peer_kid:
        return False
    overlap = min(timedelta(seconds=body.overlap_seconds), MAX_OVERLAP)
    link.previous_kid = link.peer_kid
    link.previous_public_key = link.peer_public_key
    link.previous_valid_until = utcnow() + overlap
    link.peer_public_key = body.public_key
    link.peer_kid = body.kid
    link.updated_at = utcnow()
    return True
