"""Verdicts (adapters.email.loops): rule order, auto mail never acts, who gets a polite reply."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from adapters.email import loops, parsing, tokens

SECRET = b"tix-corpus-secret-not-for-production"
DELEGATION = "3f2b8c1e-6d4a-4e59-9a7b-1c2d3e4f5a6b"
OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
DOMAIN = "mail.tix.example"
REPLY = tokens.make_reply_address("tix", DOMAIN, DELEGATION, SECRET)
PARTICIPANT = "ivan.petrov@coolfix.example"


def build_mail(
    *,
    sender: str = f"Ivan Petrov <{PARTICIPANT}>",
    to: str = REPLY,
    headers: str = "",
    subject: str = "Re: [ACME-1042] New job",
    body: str = "ACCEPT\n\nOn site at 10.\n",
) -> parsing.InboundMail:
    raw = (
        f"From: {sender}\nTo: {to}\nSubject: {subject}\n{headers}"
        f"Message-ID: <r1@coolfix.example>\nContent-Type: text/plain; charset=utf-8\n\n{body}"
    ).encode()
    return parsing.parse_inbound(raw, reply_domain=DOMAIN)


def classify(
    mail: parsing.InboundMail,
    *,
    delegation_id: str | None = DELEGATION,
    participants: Iterable[str] = (PARTICIPANT,),
    envelope_sender: str | None = None,
    envelope_recipients: Iterable[str] = (),
    trusted_authserv_ids: Iterable[str] = (),
) -> loops.Verdict:
    return loops.classify(
        mail,
        participant_addresses=participants,
        our_addresses=["tix@mail.tix.example"],
        our_domains=[DOMAIN],
        delegation_id=delegation_id,
        secret=SECRET,
        reply_domain=DOMAIN,
        envelope_sender=envelope_sender,
        envelope_recipients=envelope_recipients,
        trusted_authserv_ids=trusted_authserv_ids,
    )


def test_participant_reply_with_a_valid_token_is_processed() -> None:
    verdict = classify(build_mail())
    assert verdict.kind == "process"
    assert verdict.token == tokens.token_for(DELEGATION, SECRET)
    assert verdict.reply is not None
    assert (verdict.reply.command, verdict.reply.comment) == ("accept", "On site at 10.")
    assert not verdict.polite_reply


def test_participant_addresses_compare_case_insensitively() -> None:
    mail = build_mail(sender="Ivan <Ivan.Petrov@CoolFix.Example>")
    assert classify(mail, participants=["IVAN.PETROV@coolfix.example"]).kind == "process"


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-replied\n",
        "Auto-Submitted: auto-generated\n",
        "X-Autoreply: yes\n",
        "X-Autorespond: yes\n",
        "Precedence: bulk\n",
        "Precedence: junk\n",
        "Precedence: list\n",
        "Precedence: auto_reply\n",
        "Return-Path: <>\n",
    ],
)
def test_auto_generated_mail_never_acts_and_never_gets_a_reply(headers: str) -> None:
    # A valid token, a participant sender and a command: still nothing may happen.
    verdict = classify(build_mail(headers=headers, body="RESOLVED done\n"))
    assert verdict.kind == "auto_reply"
    assert verdict.reply is None
    assert not verdict.polite_reply


def test_null_envelope_sender_is_auto_even_without_headers() -> None:
    verdict = classify(build_mail(), envelope_sender="")
    assert (verdict.kind, verdict.reason) == ("auto_reply", "null sender")


def test_auto_reply_from_a_stranger_gets_no_polite_reply() -> None:
    mail = build_mail(sender="x@elsewhere.example", headers="Auto-Submitted: auto-replied\n")
    assert classify(mail, delegation_id=None) == loops.Verdict(
        "auto_reply", "auto-submitted: auto-replied"
    )


def test_loop_header_wins_over_everything_else() -> None:
    mail = build_mail(headers="X-Tix-Loop: acme-email\nAuto-Submitted: auto-generated\n")
    assert classify(mail) == loops.Verdict("loop", "x-tix-loop")


@pytest.mark.parametrize("sender", ["tix@mail.tix.example", REPLY, "anything@MAIL.TIX.EXAMPLE"])
def test_mail_from_our_own_addresses_is_a_loop_and_never_answered(sender: str) -> None:
    verdict = classify(build_mail(sender=sender), participants=[sender])
    assert (verdict.kind, verdict.reason, verdict.polite_reply) == ("loop", "own_address", False)


def test_too_many_hops_is_a_loop() -> None:
    received = "Received: from a by b; Tue, 5 Mar 2024 10:00:00 +0300\n" * 31
    assert classify(build_mail(headers=received)).kind == "loop"


def test_bounce_from_mailer_daemon_without_dsn_is_a_bounce() -> None:
    mail = build_mail(
        sender="MAILER-DAEMON@mx.coolfix.example",
        subject="Undelivered Mail Returned to Sender",
        headers="Return-Path: <>\n",
        body="The mail system: user unknown\n",
    )
    verdict = classify(mail, delegation_id=None)
    assert verdict.kind == "bounce"
    assert verdict.failed_recipients == ()
    assert not verdict.polite_reply


def test_caps_and_sender_problems_are_rejections_without_reply() -> None:
    rejected = parsing.parse_inbound(b"x" * 100, max_bytes=10)
    assert classify(rejected) == loops.Verdict("rejected", "too_large")
    ambiguous = build_mail(sender=f"{PARTICIPANT} <mallory@evil.example>")
    assert classify(ambiguous) == loops.Verdict("rejected", "ambiguous_sender")
    nobody = parsing.parse_inbound(f"To: {REPLY}\nSubject: x\n\nACCEPT\n".encode())
    assert classify(nobody) == loops.Verdict("rejected", "no_sender")


def test_dkim_length_tag_is_refused() -> None:
    mail = build_mail(headers="DKIM-Signature: v=1; a=rsa-sha256; d=coolfix.example; l=5; b=x\n")
    assert classify(mail) == loops.Verdict("rejected", "dkim_length_tag")


def test_only_a_trusted_authentication_results_header_can_fail_dmarc() -> None:
    failing = "Authentication-Results: mx.tix.example; dmarc=fail header.from=coolfix.example\n"
    forged = "Authentication-Results: evil.example; dmarc=fail\n"
    trusted = ["mx.tix.example"]
    assert classify(build_mail(headers=failing), trusted_authserv_ids=trusted) == loops.Verdict(
        "spoofed_sender", "dmarc_fail"
    )
    assert classify(build_mail(headers=forged), trusted_authserv_ids=trusted).kind == "process"
    assert classify(build_mail(headers=failing)).kind == "process"  # no trusted ids configured
    passing = "Authentication-Results: mx.tix.example; dmarc=pass\n"
    assert classify(build_mail(headers=passing), trusted_authserv_ids=trusted).kind == "process"


def test_unknown_thread_missing_token_and_wrong_token_are_bad_tokens() -> None:
    assert classify(build_mail(), delegation_id=None) == loops.Verdict(
        "bad_token", "unknown_thread", polite_reply=True
    )
    no_token = build_mail(to="ACME <dispatch@acme.example>")
    assert classify(no_token) == loops.Verdict("bad_token", "missing_token", polite_reply=True)
    assert classify(build_mail(), delegation_id=OTHER) == loops.Verdict(
        "bad_token", "token_mismatch", polite_reply=True
    )


def test_token_in_our_message_id_threads_a_reply_sent_elsewhere() -> None:
    message_id = tokens.make_message_id(DOMAIN, DELEGATION, SECRET, "offer-1")
    mail = build_mail(to="ACME <dispatch@acme.example>", headers=f"In-Reply-To: {message_id}\n")
    assert classify(mail).kind == "process"


def test_token_only_in_the_envelope_recipient_counts() -> None:
    mail = build_mail(to="undisclosed-recipients:;")
    assert classify(mail).reason == "missing_token"
    assert classify(mail, envelope_recipients=[REPLY]).kind == "process"


def test_token_of_the_previous_secret_still_verifies() -> None:
    verdict = loops.classify(
        build_mail(),
        participant_addresses=[PARTICIPANT],
        our_addresses=[],
        delegation_id=DELEGATION,
        secret=b"the-new-secret-after-rotation",
        previous_secrets=[SECRET],
    )
    assert verdict.kind == "process"


def test_stranger_with_a_valid_token_is_a_spoofed_sender_and_gets_a_polite_reply() -> None:
    verdict = classify(build_mail(sender="Mallory <mallory@evil.example>"))
    assert verdict == loops.Verdict(
        "spoofed_sender",
        "sender_mismatch",
        polite_reply=True,
        token=tokens.token_for(DELEGATION, SECRET),
    )


def test_outbound_headers_mark_our_mail_as_automatic_and_ours() -> None:
    headers = loops.outbound_headers("acme-email")
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers[parsing.LOOP_HEADER] == "acme-email"
    assert "OOF" in headers["X-Auto-Response-Suppress"]
    echoed = build_mail(headers="".join(f"{k}: {v}\n" for k, v in headers.items()))
    assert classify(echoed).kind == "loop"


def test_thread_key_orders_tokens_by_strength() -> None:
    other_reply = tokens.make_reply_address("tix", DOMAIN, OTHER, SECRET)
    message_id = tokens.make_message_id(DOMAIN, OTHER, SECRET, "c-1")
    mail = build_mail(
        to=REPLY,
        headers=f"In-Reply-To: {message_id}\nReferences: <old@x.example> {message_id}\n",
    )
    key = loops.thread_key(mail, reply_domain=DOMAIN, envelope_recipients=[other_reply])
    assert key.tokens == (tokens.token_for(OTHER, SECRET), tokens.token_for(DELEGATION, SECRET))
    assert key.message_ids == (message_id[1:-1], "old@x.example")
    assert key.subject_tag == "ACME-1042"


def test_bounce_is_tied_to_the_delegation_only_through_our_message_id() -> None:
    message_id = tokens.make_message_id(DOMAIN, DELEGATION, SECRET, "offer-1")
    body = (
        "--r\nContent-Type: text/plain\n\nfailed\n"
        "--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; {PARTICIPANT}\nAction: failed\nStatus: 5.1.1\n\n"
        f"--r\nContent-Type: text/rfc822-headers\n\nMessage-ID: {{mid}}\n\n--r--\n"
    )

    def dsn(mid: str) -> parsing.InboundMail:
        raw = (
            "From: MAILER-DAEMON@mx.example.org\nTo: bounces@mail.tix.example\n"
            "Subject: Undelivered Mail\nReturn-Path: <>\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\n\n'
            + body.format(mid=mid)
        )
        return parsing.parse_inbound(raw.encode(), reply_domain=DOMAIN)

    ours = classify(dsn(message_id))
    assert (ours.kind, ours.failed_recipients) == ("bounce", (PARTICIPANT,))
    assert ours.token == tokens.token_for(DELEGATION, SECRET)
    forged = classify(dsn("<made-up@evil.example>"))
    assert (forged.kind, forged.token) == ("bounce", None)
    assert not forged.polite_reply
