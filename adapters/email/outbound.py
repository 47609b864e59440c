"""Mails to hosted participants, queued in the transaction of what they tell about.

``Mailer.on_applied`` is the node's ``on_applied`` hook: it runs inside the inbox transaction of
every message applied to a hosted account and turns offers, updates, recalls, reworks,
confirmations and partner comments into rows of ``MailOutbox``; the rows commit or roll back
with the message, so a mail is queued exactly when its event happened. ``sender`` delivers them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from account.context import Identity
from adapters.email import tokens
from adapters.email.compose import Thread, compose
from adapters.email.models import MailOutbox, MailParticipant, MailThread
from adapters.email.settings import MailSettings
from adapters.hosting import hooks
from exchange.envelopes import Opened
from schemas import messages as m

log = logging.getLogger("tix.email.outbound")

_KINDS = {
    "delegation.offer": "offer",
    "ticket.update": "update",
    "delegation.recall": "recall",
    "resolution.rework": "rework",
    "resolution.confirm": "confirm",
    "ticket.comment": "comment",
}


@dataclass
class Mailer:
    """Renders and queues mails for the adapter ``adapter_id`` (the process's own account)."""

    mail: MailSettings
    secret: bytes
    adapter_id: str

    # -- queueing -----------------------------------------------------------------------------

    def queue(
        self,
        session: Session,
        *,
        account_id: str,
        kind: str,
        language: str,
        values: dict[str, Any],
        to: list[str],
        from_name: str,
        delegation_id: str | None = None,
        number: str | None = None,
    ) -> MailOutbox:
        earlier: list[str] = []
        if delegation_id is not None:
            earlier = list(
                session.exec(
                    select(MailOutbox.message_id)
                    .where(
                        MailOutbox.account_id == account_id,
                        MailOutbox.delegation_id == delegation_id,
                    )
                    .order_by(col(MailOutbox.id))
                ).all()
            )
            self.remember_thread(session, account_id, delegation_id)
        composed = compose(
            kind=kind,
            language=language,
            values=values,
            to=to,
            from_name=from_name,
            domain=self.mail.mail_domain,
            local=self.mail.mail_local,
            secret=self.secret,
            adapter_id=self.adapter_id,
            thread=Thread(delegation_id=delegation_id, number=number, earlier=earlier),
        )
        row = MailOutbox(
            message_id=composed.message_id,
            account_id=account_id,
            delegation_id=delegation_id,
            kind=kind,
            recipients=composed.recipients,
            envelope_from="" if kind == "notice" else composed.reply_to,
            raw=composed.raw,
        )
        session.add(row)
        session.flush()
        return row

    def remember_thread(self, session: Session, account_id: str, delegation_id: str) -> None:
        token = tokens.token_for(delegation_id, self.secret)
        exists = session.exec(select(MailThread.id).where(MailThread.token == token)).first()
        if exists is None:
            session.add(MailThread(token=token, account_id=account_id, delegation_id=delegation_id))
            session.flush()

    def welcome(self, session: Session, participant: MailParticipant, upstream: str) -> MailOutbox:
        return self.queue(
            session,
            account_id=participant.account_id,
            kind="welcome",
            language=participant.language,
            values={
                "name": participant.name,
                "upstream": upstream,
                "participant": participant.name,
            },
            to=list(participant.emails),
            from_name=upstream,
        )

    # -- the node's hook ----------------------------------------------------------------------

    def on_applied(self, session: Session, identity: Identity, opened: Opened) -> None:
        """Queue the mail an applied message means for a hosted participant (if any)."""
        kind = _KINDS.get(opened.envelope.type)
        if kind is None:
            return
        found = hooks.incoming(session, MailParticipant, identity, opened.envelope.subject)
        if found is None:
            return
        participant, delegation, ticket, link = found
        if link is None:
            return
        upstream = link.peer_label or link.peer_account
        values: dict[str, Any] = {
            "upstream": upstream,
            "participant": participant.name,
            "name": participant.name,
            "number": ticket.number,
            "title": ticket.title,
            "priority": ticket.priority,
            "description": ticket.description,
        }
        body = opened.body
        if isinstance(body, m.DelegationOffer):
            service_object = ticket.service_object or {}
            values |= {
                "note": body.note,
                "site": " / ".join(
                    v for v in (service_object.get("site"), service_object.get("address")) if v
                ),
                "equipment": service_object.get("equipment") or "",
            }
        elif isinstance(body, m.TicketUpdate):
            values |= {"priority_changed": body.priority is not None, "addendum": body.addendum}
        elif isinstance(body, m.DelegationRecall):
            values["reason"] = body.reason
        elif isinstance(body, m.ResolutionRework):
            values["reason"] = body.reason
        elif isinstance(body, m.TicketComment):  # internal ones never cross a link
            values |= {"author": body.author, "body": body.body}
        self.queue(
            session,
            account_id=participant.account_id,
            kind=kind,
            language=participant.language,
            values=values,
            to=list(participant.emails),
            from_name=upstream,
            delegation_id=delegation.delegation_id,
            number=ticket.number,
        )
