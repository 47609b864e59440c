"""Tables of the e-mail adapter: hosted participants, the mail queue and the inbound log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel

from adapters.hosting.participants import HostedParticipant
from exchange.clock import utcnow


class MailParticipant(HostedParticipant, table=True):
    """An e-mail-only company hosted by this adapter: one hosted account each."""

    emails: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    language: str = Field(default="en", max_length=2)
    undeliverable: bool = False


class MailOutbox(SQLModel, table=True):
    """A rendered mail waiting for the SMTP server (``pending``), gone (``sent``) or failed.

    Written in the transaction of the event it tells about; the sender marks it ``sent`` only
    after the server's 250 for the DATA command. ``bounced`` when a DSN came back for it.
    """

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=250)
    account_id: str = Field(index=True, max_length=63)
    delegation_id: str | None = Field(default=None, index=True, max_length=36)
    kind: str = Field(max_length=20)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # SMTP MAIL FROM: the delegation's reply address, so a bounce names its thread; "" (the
    # null sender) for notices, which must never cause a bounce back (RFC 3834).
    envelope_from: str = Field(default="", max_length=320)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default="pending", index=True, max_length=10)
    tries: int = 0
    next_try_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class MailInbound(SQLModel, table=True):
    """One inbound mail seen (deduplicated by Message-ID) and what became of it."""

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, max_length=250)
    account_id: str | None = Field(default=None, index=True, max_length=63)
    delegation_id: str | None = Field(default=None, max_length=36)
    sender: str | None = Field(default=None, index=True, max_length=320)
    verdict: str = Field(max_length=20)
    reason: str = Field(default="", max_length=500)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    received_at: datetime = Field(default_factory=utcnow)


class MailThread(SQLModel, table=True):
    """A hosted delegation's reply token, to find the delegation a reply belongs to."""

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True, max_length=40)
    account_id: str = Field(index=True, max_length=63)
    delegation_id: str = Field(max_length=36)
