"""Hosted e-mail participants: one hosted account (own Ed25519 key) per e-mail-only company.

``create`` redeems an upstream's invitation for a new participant (``adapters.hosting``: a
unique ``account_id`` from the name, the account's key file, the ``link.accept`` handshake) and
queues the welcome mail, all in the caller's transaction.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from sqlmodel import Session

from account.config import Settings
from account.context import Identity
from adapters.email.addresses import AddressError, parse_mailbox
from adapters.email.models import MailParticipant
from adapters.email.outbound import Mailer
from adapters.hosting import participants as hosting
from adapters.hosting.participants import JoinRequest


class ParticipantCreate(JoinRequest):
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


def create(
    *,
    session: Session,
    settings: Settings,
    adapter: Identity,
    mailer: Mailer,
    participant_in: ParticipantCreate,
) -> tuple[MailParticipant, Identity]:
    """Create the hosted account, accept the invitation as it, queue the welcome mail."""
    # The adapter's API serves the hosted account's large attachments to the upstream.
    registration = hosting.register(
        session=session,
        settings=settings,
        model=MailParticipant,
        name=participant_in.name,
        token=participant_in.token,
        api_url=settings.public_url or None,
    )
    participant = MailParticipant(
        **registration.columns(adapter, participant_in.name),
        emails=participant_in.emails,
        language=participant_in.language,
    )
    session.add(participant)
    session.flush()
    link = registration.link
    mailer.welcome(session, participant, link.peer_label or registration.claims.upstream)
    registration.save_key()
    return participant, registration.identity


def to_public(participant: MailParticipant) -> dict[str, object]:
    return hosting.common_public(participant) | {
        "emails": participant.emails,
        "language": participant.language,
        "undeliverable": participant.undeliverable,
    }
