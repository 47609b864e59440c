"""Inbound mail to hosted participants: find the thread, check it, apply it as the participant.

``InboundProcessor.process`` takes one raw mail (from the SMTP listener or the IMAP poller) and,
in one database transaction:

1. parses it with the caps of the pure layer (``parsing.parse_inbound``, never raises);
2. drops it if its Message-ID (or raw digest) was seen before: an IMAP re-fetch, a resend;
3. finds the delegation: a reply token (envelope recipients, To/Cc, our Message-IDs), then our
   Message-IDs in In-Reply-To/References, then the ``[NUMBER]`` subject tag;
4. classifies it (``loops.classify``): the sender must be one of the participant's addresses
   and the token must verify; auto-replies, bounces and loops never become a status or comment;
5. for ``process``: comment and attachments first (a decline's explanation must still travel),
   then the command, through the node's own services as the hosted account, so it goes up the
   chain as signed messages; authors read "<name> via e-mail";
6. a bounce that names one of our mails marks that mail ``bounced``, the participant
   undeliverable, and tells the upstream with a partner comment;
7. a mismatch (unknown thread, bad token, foreign sender) gets a polite notice, at most
   ``polite_replies_per_hour`` per sender, and changes nothing;
8. a sender over ``mails_per_sender_per_hour`` is ``rate_limited``: logged, nothing applied (the
   backstop against loops that no header gives away).

A command the ticket's state does not allow (``ACCEPT`` twice) changes nothing but the comment;
the participant is told. Whatever else goes wrong inside is logged and recorded as ``error``,
never a crash of the listener; only a database failure propagates, so the mail stays with the
sending server (451) or unseen in the mailbox, and comes again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col, select

from account.attachments import service as attachment_service
from account.attachments.content import normalise_content_type, sanitise_filename
from account.attachments.models import AttachmentIn
from account.config import Settings
from account.context import Identity
from account.delegations import service as delegation_service
from account.delegations.models import Delegation
from account.errors import AccountError
from account.links.models import Link
from account.tickets import states
from account.tickets.models import CommentCreate, Ticket
from adapters.email import loops
from adapters.email.commands import Reply
from adapters.email.models import MailInbound, MailOutbox, MailParticipant, MailThread
from adapters.email.outbound import Mailer
from adapters.email.parsing import InboundMail, parse_inbound
from adapters.email.settings import MailSettings
from exchange.clock import utcnow

log = logging.getLogger("tix.email.inbound")

MAX_COMMENT = 20_000
VIA = "via e-mail"


def _bracketed(message_id: str) -> str:
    """Our Message-IDs are stored as sent, in angle brackets; parsed ones come without."""
    return f"<{message_id.strip().strip('<>')}>"


@dataclass
class Outcome:
    verdict: str
    reason: str = ""
    delegation_id: str | None = None
    applied: list[str] = field(default_factory=list)


@dataclass
class InboundProcessor:
    engine: Engine
    settings: Settings
    mail: MailSettings
    mailer: Mailer
    identities: dict[str, Identity]

    def process(
        self,
        raw: bytes,
        *,
        envelope_sender: str | None = None,
        envelope_recipients: tuple[str, ...] = (),
    ) -> Outcome:
        mail = parse_inbound(
            raw,
            reply_domain=self.mail.mail_domain,
            max_attachment_bytes=self.settings.attachment_max_bytes,
        )
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                seen = session.exec(
                    select(MailInbound.id).where(MailInbound.dedupe_key == mail.dedupe_key[:250])
                ).first()
                if seen is not None:
                    return Outcome("duplicate")
                outcome = self._decide(session, mail, envelope_sender, envelope_recipients)
                session.add(
                    MailInbound(
                        dedupe_key=mail.dedupe_key[:250],
                        account_id=self._account_of(session, outcome.delegation_id),
                        delegation_id=outcome.delegation_id,
                        sender=(mail.sender or "")[:320] or None,
                        verdict=outcome.verdict,
                        reason=outcome.reason[:500],
                        detail={"subject": mail.subject[:200], "applied": outcome.applied},
                    )
                )
                session.commit()
        except IntegrityError as exc:
            if self._seen(mail.dedupe_key):
                return Outcome("duplicate")  # the same mail, processed at the same moment
            return self._record_error(mail, exc)
        except DBAPIError:
            raise  # the database is away: the listener answers 451, the poller leaves it unseen
        except Exception as exc:  # a bug: recorded, never a crash
            return self._record_error(mail, exc)
        log.info(
            "mail %s from %s: %s (%s) %s",
            mail.message_id,
            mail.sender,
            outcome.verdict,
            outcome.reason,
            outcome.applied,
        )
        return outcome

    def _seen(self, dedupe_key: str) -> bool:
        with Session(self.engine) as session:
            found = session.exec(
                select(MailInbound.id).where(MailInbound.dedupe_key == dedupe_key[:250])
            ).first()
        return found is not None

    def _record_error(self, mail: InboundMail, exc: Exception) -> Outcome:
        log.error("mail %s could not be processed", mail.message_id, exc_info=exc)
        outcome = Outcome("error", f"{type(exc).__name__}: {exc}"[:500])
        try:
            with Session(self.engine) as session:
                session.add(
                    MailInbound(
                        dedupe_key=mail.dedupe_key[:250],
                        sender=(mail.sender or "")[:320] or None,
                        verdict="error",
                        reason=outcome.reason,
                    )
                )
                session.commit()
        except Exception:
            log.exception("could not record the failed mail")
        return outcome

    # -- deciding ----------------------------------------------------------------------------

    def _account_of(self, session: Session, delegation_id: str | None) -> str | None:
        if delegation_id is None:
            return None
        thread = session.exec(
            select(MailThread).where(MailThread.delegation_id == delegation_id)
        ).first()
        return thread.account_id if thread else None

    def find_delegation(
        self, session: Session, mail: InboundMail, envelope_recipients: tuple[str, ...]
    ) -> Delegation | None:
        key = loops.thread_key(
            mail, reply_domain=self.mail.mail_domain, envelope_recipients=envelope_recipients
        )
        found: tuple[str, str] | None = None
        for token in key.tokens:
            thread = session.exec(select(MailThread).where(MailThread.token == token)).first()
            if thread is not None:
                found = (thread.account_id, thread.delegation_id)
                break
        if found is None:
            for message_id in key.message_ids:
                row = session.exec(
                    select(MailOutbox).where(MailOutbox.message_id == _bracketed(message_id))
                ).first()
                if row is not None and row.delegation_id:
                    found = (row.account_id, row.delegation_id)
                    break
        if found is None and key.subject_tag:
            ticket = session.exec(
                select(Ticket).where(
                    func.upper(Ticket.number) == key.subject_tag.upper(),
                    col(Ticket.account_id).in_(list(self.identities)),
                )
            ).first()
            if ticket is not None:
                d = delegation_service.incoming(session=session, ticket=ticket)
                if d is not None:
                    found = (d.account_id, d.delegation_id)
        if found is None or found[0] not in self.identities:
            return None
        return session.exec(
            select(Delegation).where(
                Delegation.account_id == found[0], Delegation.delegation_id == found[1]
            )
        ).first()

    def _decide(
        self,
        session: Session,
        mail: InboundMail,
        envelope_sender: str | None,
        envelope_recipients: tuple[str, ...],
    ) -> Outcome:
        if mail.sender and self._flooding(session, mail.sender):
            return Outcome("rate_limited", f"over {self.mail.mails_per_sender_per_hour} an hour")
        delegation = self.find_delegation(session, mail, envelope_recipients)
        participant = (
            session.exec(
                select(MailParticipant).where(MailParticipant.account_id == delegation.account_id)
            ).first()
            if delegation is not None
            else None
        )
        verdict = loops.classify(
            mail,
            participant_addresses=participant.emails if participant else (),
            our_addresses=[self.mail.from_address],
            delegation_id=delegation.delegation_id if delegation else None,
            secret=self.mailer.secret,
            our_domains=[self.mail.mail_domain],
            reply_domain=self.mail.mail_domain,
            envelope_sender=envelope_sender,
            envelope_recipients=envelope_recipients,
            trusted_authserv_ids=self.mail.mail_trusted_authserv_ids,
        )
        d_id = delegation.delegation_id if delegation else None
        if verdict.kind == "process" and delegation and participant and verdict.reply:
            return self._apply(session, mail, verdict.reply, delegation, participant)
        if verdict.kind == "bounce" and verdict.token and delegation and participant:
            return self._bounce(session, mail, verdict, delegation, participant)
        if verdict.kind == "bounce" and mail.bounced_message_id:
            return self._bounce_outside_thread(session, mail, verdict)
        if verdict.polite_reply and mail.sender:
            self._polite(session, mail, mail.sender, participant, verdict.reason)
        return Outcome(verdict.kind, verdict.reason, d_id if verdict.token else None)

    # -- acting ------------------------------------------------------------------------------

    def _apply(
        self,
        session: Session,
        mail: InboundMail,
        reply: Reply,
        delegation: Delegation,
        participant: MailParticipant,
    ) -> Outcome:
        identity = self.identities[participant.account_id]
        ticket = session.get(Ticket, delegation.ticket_id)
        assert ticket is not None
        outcome = Outcome("process", "ok", delegation.delegation_id)
        if delegation.state in states.TERMINAL_DELEGATION_STATES:
            self._notice(session, participant, mail, "the ticket is closed", delegation, ticket)
            outcome.reason = f"delegation {delegation.state}"
            return outcome
        if participant.undeliverable:  # they write to us, so mail reaches them again
            participant.undeliverable = False
            session.add(participant)
        # Who wrote it, as their mail client names them; comments add the company's name.
        person = " ".join(mail.sender_name.split())[:100]
        actor = f"{person} {VIA}" if person else VIA
        comment = reply.comment.strip()
        if reply.command == "decline" and not reply.argument and comment:
            reply = Reply("decline", comment.splitlines()[0][:500], comment, reply.forwarded)
        if comment:
            delegation_service.comment(
                session=session,
                identity=identity,
                ticket=ticket,
                comment_in=CommentCreate(body=comment[:MAX_COMMENT], visibility="partner"),
                actor=actor,
            )
            outcome.applied.append("comment")
        for attachment in mail.attachments:
            if attachment.inline and attachment.content_type.startswith("image/") and comment:
                continue  # a logo or an inline signature picture
            if not attachment.data or len(attachment.data) > self.settings.attachment_max_bytes:
                continue
            sha = attachment_service.blob_store(self.settings).put(attachment.data)
            attachment_service.create(
                session=session,
                identity=identity,
                settings=self.settings,
                ticket=ticket,
                attachment_in=AttachmentIn(
                    filename=sanitise_filename(attachment.filename or "attachment"),
                    content_type=normalise_content_type(attachment.content_type),
                    size=len(attachment.data),
                    sha256=sha,
                    visibility="partner",
                ),
                actor=actor,
            )
            outcome.applied.append("attachment")
        if reply.command is not None:
            try:
                self._command(session, identity, ticket, reply, actor)
                outcome.applied.append(reply.command)
            except AccountError as exc:
                outcome.reason = f"{reply.command} not applied: {exc.detail}"
                self._notice(
                    session,
                    participant,
                    mail,
                    exc.detail,
                    delegation,
                    ticket,
                    comment_kept="comment" in outcome.applied,
                )
        if not outcome.applied and outcome.reason == "ok":
            outcome.reason = "empty"
        return outcome

    def _command(
        self, session: Session, identity: Identity, ticket: Ticket, reply: Reply, actor: str
    ) -> None:
        argument = reply.argument.strip()
        if reply.command == "accept":
            delegation_service.accept(
                session=session, identity=identity, ticket=ticket, actor=actor
            )
            return
        if reply.command == "decline":
            delegation_service.decline(
                session=session,
                identity=identity,
                ticket=ticket,
                reason=(argument or "declined by e-mail")[:500],
                actor=actor,
            )
            return
        target = {"start": "in_progress", "hold": "on_hold", "resolve": "resolved"}[
            str(reply.command)
        ]
        if ticket.status == "offered":  # working on an offer means taking it
            delegation_service.accept(
                session=session, identity=identity, ticket=ticket, actor=actor
            )
        delegation_service.change_status(
            session=session,
            identity=identity,
            ticket=ticket,
            target=target,
            note=argument[:MAX_COMMENT],
            actor=actor,
        )

    def _bounce(
        self,
        session: Session,
        mail: InboundMail,
        verdict: loops.Verdict,
        delegation: Delegation,
        participant: MailParticipant,
    ) -> Outcome:
        failed = ", ".join(verdict.failed_recipients) or ", ".join(participant.emails)
        if mail.bounced_message_id:
            row = session.exec(
                select(MailOutbox).where(
                    MailOutbox.message_id == _bracketed(mail.bounced_message_id)
                )
            ).first()
            if row is not None:
                row.state = "bounced"
                row.last_error = f"bounced: {failed}"[:500]
                session.add(row)
        participant.undeliverable = True
        session.add(participant)
        ticket = session.get(Ticket, delegation.ticket_id)
        outcome = Outcome("bounce", verdict.reason, delegation.delegation_id)
        link = session.get(Link, delegation.link_id)
        # A bounce storm tells the upstream once an hour per delegation, not once a DSN.
        told = session.exec(
            select(MailInbound.id).where(
                MailInbound.delegation_id == delegation.delegation_id,
                MailInbound.verdict == "bounce",
                MailInbound.received_at >= utcnow() - timedelta(hours=1),
            )
        ).first()
        if (
            told is None
            and ticket is not None
            and link is not None
            and link.state == "active"
            and delegation.state in states.OPEN_DELEGATION_STATES
        ):
            diagnostic = next((r.diagnostic for r in verdict.reports if r.diagnostic), "")
            text = (
                f"E-mail to {participant.name} ({failed}) could not be delivered"
                + (f": {diagnostic.rstrip('.')}." if diagnostic else ".")
                + " They may not know about this ticket; please reach them another way."
            )
            delegation_service.comment(
                session=session,
                identity=self.identities[participant.account_id],
                ticket=ticket,
                comment_in=CommentCreate(body=text[:MAX_COMMENT], visibility="partner"),
                actor="e-mail gateway",
            )
            outcome.applied.append("bounce_reported")
        return outcome

    def _flooding(self, session: Session, sender: str) -> bool:
        since = utcnow() - timedelta(hours=1)
        count = session.exec(
            select(func.count())
            .select_from(MailInbound)
            .where(MailInbound.sender == sender[:320], MailInbound.received_at >= since)
        ).one()
        return int(count) >= self.mail.mails_per_sender_per_hour

    def _bounce_outside_thread(
        self, session: Session, mail: InboundMail, verdict: loops.Verdict
    ) -> Outcome:
        """A bounce of a mail outside any ticket (the welcome): the DSN quotes our exact
        Message-ID, which has a random part nobody else saw, so it is believed."""
        assert mail.bounced_message_id is not None
        row = session.exec(
            select(MailOutbox).where(MailOutbox.message_id == _bracketed(mail.bounced_message_id))
        ).first()
        if row is None or row.delegation_id is not None:
            return Outcome("bounce", verdict.reason)
        row.state = "bounced"
        row.last_error = f"bounced: {', '.join(verdict.failed_recipients)}"[:500]
        session.add(row)
        participant = session.exec(
            select(MailParticipant).where(MailParticipant.account_id == row.account_id)
        ).first()
        outcome = Outcome("bounce", verdict.reason)
        if participant is not None:
            participant.undeliverable = True
            session.add(participant)
            outcome.applied.append("participant_undeliverable")
        return outcome

    def _rate_ok(self, session: Session, address: str) -> bool:
        since = utcnow() - timedelta(hours=1)
        rows = session.exec(
            select(MailOutbox.recipients).where(
                MailOutbox.kind == "notice", MailOutbox.created_at >= since
            )
        ).all()
        sent = sum(1 for recipients in rows if address in recipients)
        return sent < self.mail.polite_replies_per_hour

    def _polite(
        self,
        session: Session,
        mail: InboundMail,
        address: str,
        participant: MailParticipant | None,
        reason: str,
    ) -> None:
        if not self._rate_ok(session, address):
            return
        problems = {
            "unknown_thread": "we could not tell which ticket it is about",
            "missing_token": "it was not a reply to one of our ticket mails",
            "token_mismatch": "it was not a reply to one of our ticket mails",
            "sender_mismatch": "it came from an address we do not know for this ticket",
        }
        self.mailer.queue(
            session,
            account_id=self.mailer.adapter_id,
            kind="notice",
            language=participant.language if participant else "en",
            values={
                "about": mail.subject[:200],
                "problem": problems.get(reason, reason),
                "mismatch": True,
                "participant": participant.name if participant else self.mail.mail_domain,
            },
            to=[address],
            from_name="Tix",
        )

    def _notice(
        self,
        session: Session,
        participant: MailParticipant,
        mail: InboundMail,
        problem: str,
        delegation: Delegation,
        ticket: Ticket,
        *,
        comment_kept: bool = False,
    ) -> None:
        if not participant.emails or not self._rate_ok(session, participant.emails[0]):
            return
        values: dict[str, Any] = {
            "about": mail.subject[:200],
            "problem": problem,
            "participant": participant.name,
            "comment_kept": comment_kept,
        }
        self.mailer.queue(
            session,
            account_id=participant.account_id,
            kind="notice",
            language=participant.language,
            values=values,
            to=[participant.emails[0]],
            from_name="Tix",
            delegation_id=delegation.delegation_id,
            number=ticket.number,
        )
