"""The idempotent inbox: every receiver check of ARCHITECTURE §5, then the message's effect.

Checks run in this order and the first failure wins: size limit, strict JSON, version, type and
schema (``exchange.envelopes.open_envelope``); then ``to`` is an account this node hosts, the
link exists and is active, ``from`` is that link's counterpart, ``kid`` is pinned for it, the
signature, ``sent_at`` not beyond the allowed skew into the future, ``id`` not processed before,
and ``seq``. ``link.accept`` is the one message that arrives before its link exists: its key
comes from its body and its authority from the invitation token it carries, which must be one
of ours.

A message that fails a check changes nothing: its transaction is rolled back, and the raw bytes
and the reason are written to ``rejected_inbound`` in a transaction of their own; the caller
then dead-letters it. The id of a processed message is written in the same transaction as its
effect, so a redelivered message is recognised and applied once. A stateful message whose
``seq`` is not higher than the last one applied for its subject is recorded as ``stale`` and
changes nothing: bodies are state, so a later message already carried everything it had.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from pydantic import ValidationError
from sqlalchemy import Table, and_, bindparam
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, col, select

from account import keys
from account.config import Settings
from account.context import Identity
from account.delegations import service as delegation_service
from account.delegations.models import Delegation
from account.errors import AccountError
from account.links import service as link_service
from account.links.models import Link
from account.messaging.models import InboxMessage, RejectedInbound
from account.sla import flows as sla_flows
from account.tickets.models import Ticket
from exchange.canonical import MAX_MESSAGE_BYTES
from exchange.clock import aware, parse_instant, utcnow
from exchange.envelopes import Opened, check_signature, check_skew, open_envelope
from exchange.errors import RejectedMessage
from exchange.faults import crash_point
from exchange.signing import kid_of, public_key_from_b64
from schemas import messages as m

log = logging.getLogger("tix.inbox")

# The inbox rows through Core statements built once (no ORM object, no unit of work): the
# already-seen check and the row written with the message's effect are two plain statements.
_INBOX = cast(Table, InboxMessage.__table__)  # type: ignore[attr-defined]
_SEEN = core_select(_INBOX.c.id).where(
    _INBOX.c.account_id == bindparam("account_id"), _INBOX.c.message_id == bindparam("message_id")
)
_INSERT = _INBOX.insert()


# The pinned key's object, parsed once per key text rather than once per message. Keyed by the
# key itself (public, base64url), so a rekey, which pins another text, can never be answered
# with the old key: which key applies is still decided per message from the link's row.
_public_key = functools.lru_cache(maxsize=256)(public_key_from_b64)


class _AlreadyProcessed(Exception):
    """The inbox row's unique key was taken meanwhile (a concurrent copy committed first)."""


RAW_KEEP_BYTES = 64 * 1024


# Called with the inbox's session, the receiving identity and the opened message.
AppliedHook = Callable[[Session, Identity, Opened], None]


@dataclass(frozen=True)
class Received:
    """What became of one inbound message: ``applied``, ``stale``, ``duplicate`` or ``rejected``."""

    outcome: str
    reason: str = ""
    message_id: str | None = None
    message_type: str | None = None


def receive(
    data: bytes,
    *,
    engine: Engine,
    identities: Mapping[str, Identity],
    max_skew: timedelta = timedelta(minutes=5),
    max_bytes: int = MAX_MESSAGE_BYTES,
    settings: Settings | None = None,
    on_applied: AppliedHook | None = None,
    broker_user: str | None = None,
    require_broker_user: bool = False,
) -> Received:
    """Check and apply one raw envelope; never raises for a bad message.

    With ``require_broker_user`` (a node with its own broker user, ``exchange.broker_identity``)
    the broker-validated ``broker_user`` must be the signed ``from`` (or this node itself,
    replaying its own dead letters), checked before anything else that needs the envelope:
    ``key_sender_mismatch`` otherwise, so a node cannot pose as another even with a valid
    signature it replays.

    ``on_applied`` runs inside the transaction of an applied message, after its effect and
    before the commit (an adapter's durable side effects, e.g. a mail queued for a hosted
    account); what it writes commits or rolls back with the message.
    """
    opened: Opened | None = None
    try:
        opened = open_envelope(data, max_bytes=max_bytes)
        if require_broker_user:
            _check_broker_user(opened, broker_user)
        with Session(engine, expire_on_commit=False) as session:
            try:
                outcome = _check_and_apply(session, opened, identities, max_skew, settings)
                if outcome == "applied" and on_applied is not None:
                    on_applied(session, identities[opened.envelope.to], opened)
            except _AlreadyProcessed:
                session.rollback()
                outcome = "duplicate"
            except (AccountError, ValidationError, DataError) as exc:
                # Authentic and well-formed, but it cannot apply here (a state or a value our
                # own rules refuse, or a value the database refuses, like text too long for
                # its column): deterministic, so reject it now instead of retrying.
                detail = exc.detail if isinstance(exc, AccountError) else str(exc)
                raise RejectedMessage("not_applicable", detail[:300]) from exc
            if outcome in ("applied", "stale"):
                crash_point("consumer_before_commit")
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    outcome = "duplicate"
            return Received(
                outcome, message_id=opened.envelope.id, message_type=opened.envelope.type
            )
    except RejectedMessage as rejected:
        _record_rejection(engine, data, opened, rejected)
        return Received(
            "rejected",
            reason=rejected.reason,
            message_id=opened.envelope.id if opened else None,
            message_type=opened.envelope.type if opened else None,
        )


def _check_broker_user(opened: Opened, broker_user: str | None) -> None:
    env = opened.envelope
    if broker_user is None:
        raise RejectedMessage("key_sender_mismatch", "no broker user id on the message")
    if broker_user not in (env.from_, env.to):  # ``to``: our own replay of a dead letter
        raise RejectedMessage(
            "key_sender_mismatch", f"broker user {broker_user} is not the sender {env.from_}"
        )


def _check_and_apply(
    session: Session,
    opened: Opened,
    identities: Mapping[str, Identity],
    max_skew: timedelta,
    settings: Settings | None = None,
) -> str:
    env = opened.envelope
    identity = identities.get(env.to)
    if identity is None:
        raise RejectedMessage("wrong_recipient", env.to)
    if env.type == "link.accept":
        return _link_accept(session, opened, identity, max_skew)

    loaded = _load(session, identity.account_id, env.link, env.subject, env.id)
    link = loaded.link
    if link is None or link.account_id != identity.account_id:
        raise RejectedMessage("no_link", env.link)
    if link.state != "active" and env.type not in ("link.suspend", "link.rekey"):
        raise RejectedMessage("link_inactive", link.state)
    if link.peer_account != env.from_:
        raise RejectedMessage("not_counterpart", f"{env.from_} is not the partner on this link")
    check_signature(opened, _public_key(_pinned_key(link, env.kid)))
    check_skew(opened, max_skew=max_skew)
    if loaded.seen:
        return "duplicate"

    if env.type.startswith("link."):
        outcome = _apply_link_message(session, identity, link, opened)
    elif env.type == "delegation.offer":
        assert isinstance(opened.body, m.DelegationOffer)
        delegation = delegation_service.apply_offer(
            session=session,
            identity=identity,
            link=link,
            subject=env.subject,
            body=opened.body,
            offered_at=parse_instant(env.sent_at),
        )
        delegation.seq_in = env.seq
        session.add(delegation)
        outcome = "applied"
    else:
        outcome = _apply_delegation_message(
            session, identity, link, loaded.delegation, opened, settings
        )
    _record_processed(session, identity, opened, outcome)
    return outcome


_LOAD = (  # built once: see ``_load``
    select(Link, Delegation, Ticket, _INBOX.c.id)
    .select_from(Link)
    .outerjoin(
        Delegation,
        and_(
            col(Delegation.account_id) == bindparam("account_id"),
            col(Delegation.delegation_id) == bindparam("subject"),
        ),
    )
    .outerjoin(Ticket, col(Ticket.id) == col(Delegation.ticket_id))
    .outerjoin(
        _INBOX,
        and_(
            _INBOX.c.account_id == bindparam("account_id"),
            _INBOX.c.message_id == bindparam("message_id"),
        ),
    )
    .where(col(Link.id) == bindparam("link_id"))
)


@dataclass
class _Loaded:
    """What the checks and the apply of one message read, in one query (see ``_load``)."""

    link: Link | None
    delegation: Delegation | None  # the subject, when it is one of our delegations
    ticket: Ticket | None  # its ticket: held here, since the session's identity map is weak
    seen: bool  # this message id was processed before


def _load(
    session: Session, account_id: str, link_id: str, subject: str, message_id: str
) -> _Loaded:
    """The link, the subject's delegation and ticket, and whether the id was seen: ONE query.

    Were four (the link, the already-seen check, the delegation, its ticket). Reading them
    before the signature is checked changes nothing: the checks still run in the order of the
    module docstring on what was read, and nothing is written until they all passed. The
    delegation and ticket come into the session's identity map, so the apply finds them there.
    """
    row = session.execute(
        _LOAD,
        {
            "account_id": account_id,
            "link_id": link_id,
            "subject": subject,
            "message_id": message_id,
        },
    ).first()
    if row is None:
        return _Loaded(link=None, delegation=None, ticket=None, seen=False)
    link, delegation, ticket, seen_id = row
    return _Loaded(link=link, delegation=delegation, ticket=ticket, seen=seen_id is not None)


def _pinned_key(link: Link, kid: str) -> str:
    """The pinned public key for ``kid`` on this link (the previous one inside its overlap)."""
    if kid == link.peer_kid:
        return link.peer_public_key
    if (
        kid == link.previous_kid
        and link.previous_public_key
        and link.previous_valid_until
        and aware(link.previous_valid_until) > utcnow()
    ):
        return link.previous_public_key
    raise RejectedMessage("unknown_kid", kid)


def _seen(session: Session, account_id: str, message_id: str) -> bool:
    row = (
        session.connection()
        .execute(_SEEN, {"account_id": account_id, "message_id": message_id})
        .first()
    )
    return row is not None


def _record_processed(session: Session, identity: Identity, opened: Opened, outcome: str) -> None:
    """Write the effect so far (one flush), then the inbox row, in the same transaction.

    ``received_at`` is taken after the effect, as when the row was an ORM object flushed last.
    A unique-key clash here means a copy of this message committed while we applied it (two
    consumers, PostgreSQL): ``_AlreadyProcessed``, and the caller rolls back to ``duplicate``.
    """
    session.flush()
    env = opened.envelope
    try:
        session.connection().execute(
            _INSERT,
            {
                "account_id": identity.account_id,
                "message_id": env.id,
                "type": env.type,
                "from_account": env.from_,
                "subject": env.subject,
                "seq": env.seq,
                "outcome": outcome,
                "received_at": utcnow(),
            },
        )
    except IntegrityError as exc:
        raise _AlreadyProcessed from exc


def _link_accept(session: Session, opened: Opened, identity: Identity, max_skew: timedelta) -> str:
    env = opened.envelope
    body = opened.body
    assert isinstance(body, m.LinkAccept)
    if body.kid != env.kid:
        raise RejectedMessage("unknown_kid", "link.accept must be signed by the key it carries")
    try:
        public = public_key_from_b64(body.public_key)
    except ValueError as exc:
        raise RejectedMessage("schema", "public_key") from exc
    if kid_of(public) != body.kid:
        raise RejectedMessage("unknown_kid", "kid does not match the public key")
    check_signature(opened, public)
    check_skew(opened, max_skew=max_skew)
    if _seen(session, identity.account_id, env.id):
        return "duplicate"
    existing = session.get(Link, env.link)
    if existing is not None:
        if existing.peer_account == env.from_ and existing.peer_kid == body.kid:
            outcome = "stale"  # the same acceptance again, under a new message id
        else:
            raise RejectedMessage("invitation_used", "link already exists")
    else:
        link_service.apply_link_accept(
            session=session, identity=identity, sender=env.from_, link_id=env.link, body=body
        )
        outcome = "applied"
    _record_processed(session, identity, opened, outcome)
    return outcome


def _apply_link_message(session: Session, identity: Identity, link: Link, opened: Opened) -> str:
    env = opened.envelope
    if env.subject != link.id:
        raise RejectedMessage("binding_mismatch", "link messages have the link as subject")
    if env.seq <= link.seq_in:
        return "stale"
    link.seq_in = env.seq
    if isinstance(opened.body, m.LinkSuspend):
        if link_service.apply_link_suspend(session=session, link=link, body=opened.body):
            delegation_service.roll_up_link(session=session, identity=identity, link=link)
    elif isinstance(opened.body, m.LinkRekey):
        keys.apply_rekey(link, opened.body, signed_by=env.kid)
    session.add(link)
    return "applied"


def _apply_delegation_message(
    session: Session,
    identity: Identity,
    link: Link,
    delegation: Delegation | None,
    opened: Opened,
    settings: Settings | None,
) -> str:
    env = opened.envelope
    if delegation is None:
        raise RejectedMessage("unknown_subject", env.subject)
    if delegation.link_id != link.id:
        raise RejectedMessage("binding_mismatch", "subject belongs to another link")
    if env.type in delegation_service.STATEFUL_TYPES:
        if env.seq <= delegation.seq_in:
            return "stale"
        delegation.seq_in = env.seq
    if env.type == "sla.event":  # idempotent by its event id
        if delegation.role != "out":
            raise RejectedMessage("wrong_direction", "sla.event travels up the chain")
        assert isinstance(opened.body, m.SlaEvent)
        sla_flows.apply_event(
            session=session, identity=identity, delegation=delegation, body=opened.body
        )
        return "applied"
    delegation_service.apply(
        session=session,
        identity=identity,
        delegation=delegation,
        message_type=env.type,
        body=opened.body,
        settings=settings,
    )
    return "applied"


def _record_rejection(
    engine: Engine, data: bytes, opened: Opened | None, rejected: RejectedMessage
) -> None:
    env = opened.envelope if opened else None
    log.warning(
        "rejected inbound message",
        extra={"reason": rejected.reason, "message_id": env.id if env else None},
    )
    row = RejectedInbound(
        account_id=env.to if env else None,
        message_id=env.id if env else None,
        from_account=env.from_ if env else None,
        type=env.type if env else None,
        reason=rejected.reason,
        detail=rejected.detail[:1000],
        raw=data[:RAW_KEEP_BYTES],
        size=len(data),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()


def record_rejection(engine: Engine, data: bytes, reason: str, detail: str) -> None:
    """Record a message the node gives up on for a reason found outside the receiver checks."""
    opened: Opened | None = None
    try:
        opened = open_envelope(data)
    except RejectedMessage:
        opened = None
    _record_rejection(engine, data, opened, RejectedMessage(reason, detail))
