"""The adapter's inbound path against a real database: the whole reply corpus, then its effects.

Every mail of ``tests/fixtures/mail`` goes through ``InboundProcessor.process`` (the code the
SMTP listener and the IMAP poller call) against a hosted participant whose delegation has the
corpus's ids, tag and addresses. Each gets the verdict ``expected.json`` names; only ``process``
mails change the ticket or send anything upstream; auto-replies, bounces and loops never become
a status or a comment; a second delivery of the same mail changes nothing.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.config import Settings
from account.context import Identity
from account.delegations.models import Delegation
from account.links.models import Link
from account.messaging.models import OutboxMessage
from account.tickets.models import Comment, Ticket
from adapters.email.inbound import InboundProcessor
from adapters.email.models import MailInbound, MailOutbox, MailParticipant, MailThread
from adapters.email.outbound import Mailer
from adapters.email.settings import MailSettings
from exchange.signing import generate_key, kid_of, public_key_b64

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
EXPECTED: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
SETUP: dict[str, Any] = EXPECTED["setup"]


def _hosted(
    session: Session,
    *,
    account: str,
    label: str,
    delegation_id: str,
    number: str,
    emails: list[str],
) -> Identity:
    upstream_key = generate_key()
    link = Link(
        id=str(uuid.uuid4()),
        account_id=account,
        peer_account="acme-" + account[-6:],
        peer_label="ACME Vendor",
        direction="upstream",
        peer_public_key=public_key_b64(upstream_key),
        peer_kid=kid_of(upstream_key.public_key()),
    )
    session.add(link)
    ticket = Ticket(
        number=number,
        account_id=account,
        title="Chiller 3 alarm",
        status="offered",
        chain_id=str(uuid.uuid4()),
        depth=1,
        upstream_account=link.peer_account,
        upstream_delegation_id=delegation_id,
    )
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    session.add(
        Delegation(
            delegation_id=delegation_id,
            account_id=account,
            role="in",
            link_id=link.id,
            peer_account=link.peer_account,
            ticket_id=ticket.id,
        )
    )
    session.add(
        MailParticipant(
            account_id=account,
            adapter_account="mailgw",
            name=label,
            emails=emails,
            upstream_account=link.peer_account,
            link_id=link.id,
        )
    )
    return Identity(account_id=account, label=label, key=generate_key())


def _processor(engine: Engine, tmp_path: Path, identities: dict[str, Identity]) -> InboundProcessor:
    mail = MailSettings(
        mail_domain=SETUP["reply_domain"],
        mail_trusted_authserv_ids=SETUP["trusted_authserv_ids"],
        polite_replies_per_hour=100,
    )
    mailer = Mailer(mail=mail, secret=SETUP["secret"].encode(), adapter_id="mailgw")
    return InboundProcessor(
        engine=engine,
        settings=Settings(account_id="mailgw", data_dir=tmp_path),
        mail=mail,
        mailer=mailer,
        identities=identities,
    )


def _counts(engine: Engine) -> tuple[int, int, list[str]]:
    with Session(engine) as session:
        comments = session.exec(select(func.count()).select_from(Comment)).one()
        upstream = session.exec(select(func.count()).select_from(OutboxMessage)).one()
        statuses = list(session.exec(select(Ticket.status).order_by(col(Ticket.id))).all())
    return int(comments), int(upstream), statuses


def test_every_corpus_mail_gets_its_verdict_and_only_process_mails_change_anything(
    engine: Engine, tmp_path: Path
) -> None:
    a, b = SETUP["delegations"]["A"], SETUP["delegations"]["B"]
    with Session(engine) as session:
        identities = {
            "coolfix-a1": _hosted(
                session,
                account="coolfix-a1",
                label="CoolFix",
                delegation_id=a,
                number="ACME-1042",
                emails=SETUP["participants"]["A"],
            ),
            "otherco-b2": _hosted(
                session,
                account="otherco-b2",
                label="OtherCo",
                delegation_id=b,
                number="ACME-2077",
                emails=SETUP["participants"]["B"],
            ),
        }
        processor = _processor(engine, tmp_path, identities)
        processor.mailer.remember_thread(session, "coolfix-a1", a)  # only A was mailed
        session.commit()

    bounces = 0
    for name in sorted(EXPECTED["mails"]):
        want = EXPECTED["mails"][name]
        raw = (CORPUS / name).read_bytes()
        before = _counts(engine)
        outcome = processor.process(raw)
        after = _counts(engine)
        assert outcome.verdict == want["verdict"], (name, outcome)
        if outcome.verdict == "process":
            continue
        assert after[2] == before[2], f"{name}: a {outcome.verdict} mail changed a status"
        if outcome.applied == ["bounce_reported"]:  # the upstream is told, as a comment
            assert outcome.verdict == "bounce"
            assert (after[0], after[1]) == (before[0] + 1, before[1] + 1)
            bounces += 1
        else:
            assert after == before, f"{name}: a {outcome.verdict} mail changed something"
        # The same mail again is recognised and changes nothing either.
        assert processor.process(raw).verdict == "duplicate"

    with Session(engine) as session:
        seen = session.exec(select(func.count()).select_from(MailInbound)).one()
        statuses = {
            t.number: t.status
            for t in session.exec(select(Ticket).where(col(Ticket.number).like("ACME-%"))).all()
        }
        sent_up = session.exec(
            select(OutboxMessage.type).where(OutboxMessage.account_id == "coolfix-a1")
        ).all()
        notices = session.exec(select(MailOutbox).where(MailOutbox.kind == "notice")).all()
    assert seen == len(EXPECTED["mails"])
    assert bounces == 1  # both DSNs name one of A's mails: the upstream is told once
    with Session(engine) as session:
        bounce_note = session.exec(
            select(Comment.body).where(col(Comment.body).contains("could not be delivered"))
        ).first()
        coolfix = session.exec(
            select(MailParticipant).where(MailParticipant.account_id == "coolfix-a1")
        ).one()
    assert bounce_note is not None
    assert not coolfix.undeliverable  # bounced, then they wrote to us again: reachable
    assert statuses["ACME-2077"] == "offered"  # nothing reached the delegation nobody mailed
    assert statuses["ACME-1042"] != "offered"
    assert "delegation.accept" in sent_up and "ticket.comment" in sent_up
    assert "ticket.attachment" in sent_up  # the photos and PDFs travel on
    # Polite notices go to the humans whose mail did not fit (spoof, forged token), no one else.
    assert notices and all("mailer-daemon" not in r.lower() for n in notices for r in n.recipients)


def test_a_command_the_state_forbids_keeps_the_comment_and_tells_the_participant(
    engine: Engine, tmp_path: Path
) -> None:
    delegation_id = str(uuid.uuid4())
    with Session(engine) as session:
        identity = _hosted(
            session,
            account="frostco-c3",
            label="FrostCo",
            delegation_id=delegation_id,
            number="FROSTCO-C3-7",
            emails=["chief@frost.example"],
        )
        processor = _processor(engine, tmp_path, {"frostco-c3": identity})
        session.commit()
    mail = (
        "From: chief@frost.example\r\nTo: tix+{token}@{domain}\r\n"
        "Subject: Re: [FROSTCO-C3-7] New ticket\r\nMessage-ID: <{mid}@frost.example>\r\n"
        "\r\nACCEPT\r\nOn our way.\r\n"
    )
    from adapters.email import tokens

    token = tokens.token_for(delegation_id, processor.mailer.secret)
    first = mail.format(token=token, domain=SETUP["reply_domain"], mid="one").encode()
    assert processor.process(first).applied == ["comment", "accept"]
    again = mail.format(token=token, domain=SETUP["reply_domain"], mid="two").encode()
    outcome = processor.process(again)
    assert outcome.applied == ["comment"]
    assert "accept not applied" in outcome.reason
    with Session(engine) as session:
        threads = session.exec(
            select(MailThread).where(MailThread.delegation_id == delegation_id)
        ).all()
        notice = session.exec(
            select(MailOutbox).where(
                MailOutbox.kind == "notice", MailOutbox.delegation_id == delegation_id
            )
        ).one()
    assert len(threads) == 1
    assert notice.recipients == ["chief@frost.example"]
    assert b"could not be applied" in notice.raw


_DSN = """Return-Path: <>
From: MAILER-DAEMON@mx.storm.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {envelope_from}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"
Message-Id: <dsn-{n}@mx.storm.example>

--b1
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.storm.example

Final-Recipient: rfc822; chief@storm.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 unknown user

--b1
Content-Type: text/rfc822-headers

From: ACME <tix@{domain}>
To: chief@storm.example
Subject: [STORMCO-D4-1] New ticket: Chiller 3 alarm
Message-ID: {message_id}

--b1--
"""


def test_a_bounce_storm_marks_the_mail_bounced_and_tells_the_upstream_once(
    engine: Engine, tmp_path: Path
) -> None:
    delegation_id = str(uuid.uuid4())
    with Session(engine, expire_on_commit=False) as session:
        identity = _hosted(
            session,
            account="stormco-d4",
            label="StormCo",
            delegation_id=delegation_id,
            number="STORMCO-D4-1",
            emails=["chief@storm.example"],
        )
        processor = _processor(engine, tmp_path, {"stormco-d4": identity})
        row = processor.mailer.queue(
            session,
            account_id="stormco-d4",
            kind="offer",
            language="en",
            values={"title": "Chiller 3 alarm", "upstream": "ACME", "participant": "StormCo"},
            to=["chief@storm.example"],
            from_name="ACME",
            delegation_id=delegation_id,
            number="STORMCO-D4-1",
        )
        session.commit()
    assert row.envelope_from.startswith("tix+")  # bounces come back to the thread's address

    before = _counts(engine)
    for n in range(20):
        raw = _DSN.format(
            envelope_from=row.envelope_from,
            n=n,
            domain=SETUP["reply_domain"],
            message_id=row.message_id,
        ).encode()
        outcome = processor.process(
            raw.replace(b"\n", b"\r\n"),
            envelope_sender="",
            envelope_recipients=(row.envelope_from,),
        )
        assert outcome.verdict == "bounce", outcome
        assert outcome.delegation_id == delegation_id
    after = _counts(engine)
    assert after[2] == before[2]  # no status anywhere
    assert (after[0], after[1]) == (before[0] + 1, before[1] + 1)  # one comment, one message up
    with Session(engine) as session:
        bounced = session.exec(select(MailOutbox).where(MailOutbox.id == row.id)).one()
        participant = session.exec(
            select(MailParticipant).where(MailParticipant.account_id == "stormco-d4")
        ).one()
        replies = session.exec(
            select(MailOutbox).where(MailOutbox.account_id == "stormco-d4", MailOutbox.id != row.id)
        ).all()
        note = session.exec(
            select(Comment.body).where(col(Comment.body).contains("chief@storm.example"))
        ).one()
    assert bounced.state == "bounced" and participant.undeliverable
    assert replies == []  # nobody answers a bounce
    assert "550 5.1.1 unknown user" in note


def test_a_sender_over_the_hourly_limit_is_logged_not_applied(
    engine: Engine, tmp_path: Path
) -> None:
    from adapters.email import tokens

    delegation_id = str(uuid.uuid4())
    with Session(engine) as session:
        identity = _hosted(
            session,
            account="chatty-e5",
            label="Chatty",
            delegation_id=delegation_id,
            number="CHATTY-E5-1",
            emails=["bot@chatty.example"],
        )
        processor = _processor(engine, tmp_path, {"chatty-e5": identity})
        session.commit()
    processor.mail.mails_per_sender_per_hour = 3
    token = tokens.token_for(delegation_id, processor.mailer.secret)
    verdicts = []
    for n in range(5):
        raw = (
            f"From: bot@chatty.example\r\nTo: tix+{token}@{SETUP['reply_domain']}\r\n"
            f"Subject: Re: [CHATTY-E5-1] ticket\r\nMessage-ID: <ack-{n}@chatty.example>\r\n"
            f"\r\nThank you for your message number {n}.\r\n"
        ).encode()
        verdicts.append(processor.process(raw).verdict)
    assert verdicts == ["process"] * 3 + ["rate_limited"] * 2
    with Session(engine) as session:
        bodies = session.exec(
            select(Comment.body).where(col(Comment.body).contains("message number"))
        ).all()
    assert len(bodies) == 3


def test_a_processing_failure_is_recorded_as_an_error_and_changes_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.email import inbound, tokens

    delegation_id = str(uuid.uuid4())
    with Session(engine) as session:
        identity = _hosted(
            session,
            account="broken-f6",
            label="Broken",
            delegation_id=delegation_id,
            number="BROKEN-F6-1",
            emails=["chief@broken.example"],
        )
        processor = _processor(engine, tmp_path, {"broken-f6": identity})
        session.commit()

    def accept_fails(**_kw: object) -> None:
        raise RuntimeError("a bug in applying the command")

    monkeypatch.setattr(inbound.delegation_service, "accept", accept_fails)
    token = tokens.token_for(delegation_id, processor.mailer.secret)
    raw = (
        f"From: chief@broken.example\r\nTo: tix+{token}@{SETUP['reply_domain']}\r\n"
        "Subject: Re: [BROKEN-F6-1] ticket\r\nMessage-ID: <b1@broken.example>\r\n"
        "\r\nACCEPT\r\nWe are on it.\r\n"
    ).encode()
    before = _counts(engine)
    outcome = processor.process(raw)
    assert outcome.verdict == "error" and "a bug in applying" in outcome.reason
    assert _counts(engine) == before  # the comment before it was rolled back with it
    assert processor.process(raw).verdict == "duplicate"  # recorded, not retried forever


def test_a_bounced_welcome_marks_the_participant_undeliverable(
    engine: Engine, tmp_path: Path
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        identity = _hosted(
            session,
            account="typo-g7",
            label="Typo",
            delegation_id=str(uuid.uuid4()),
            number="TYPO-G7-1",
            emails=["chief@storm.example"],
        )
        processor = _processor(engine, tmp_path, {"typo-g7": identity})
        participant = session.exec(
            select(MailParticipant).where(MailParticipant.account_id == "typo-g7")
        ).one()
        welcome = processor.mailer.welcome(session, participant, "ACME")
        session.commit()
    assert welcome.envelope_from == f"tix@{SETUP['reply_domain']}"
    raw = _DSN.format(
        envelope_from=welcome.envelope_from,
        n="welcome",
        domain=SETUP["reply_domain"],
        message_id=welcome.message_id,
    ).encode()
    before = _counts(engine)
    outcome = processor.process(raw.replace(b"\n", b"\r\n"), envelope_sender="")
    assert (outcome.verdict, outcome.applied) == ("bounce", ["participant_undeliverable"])
    assert _counts(engine) == before
    with Session(engine) as session:
        row = session.exec(select(MailOutbox).where(MailOutbox.id == welcome.id)).one()
        participant = session.exec(
            select(MailParticipant).where(MailParticipant.account_id == "typo-g7")
        ).one()
    assert row.state == "bounced" and participant.undeliverable
