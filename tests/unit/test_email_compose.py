"""Outbound mails: both languages, both parts, threading and loop headers, escaping."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from adapters.email import loops, parsing, tokens
from adapters.email.compose import LANGUAGES, Thread, compose, render_text

SECRET = b"compose-test-secret-0123456789abcdef"
DELEGATION = "3f2b8c1e-6d4a-4e59-9a7b-1c2d3e4f5a6b"
KINDS = ["welcome", "offer", "update", "recall", "rework", "confirm", "comment", "notice"]


def _mail(kind: str, language: str, **values: str) -> EmailMessage:
    composed = compose(
        kind=kind,
        language=language,
        values={"title": "ATM 0417 <b>down</b>", "upstream": "ACME", "participant": "CoolFix"}
        | values,
        to=["dispatch@coolfix.example"],
        from_name="ACME",
        domain="mail.tix.test",
        local="tix",
        secret=SECRET,
        adapter_id="mailgw",
        thread=Thread(
            delegation_id=DELEGATION,
            number="COOLFIX-12",
            earlier=["<tix.one@mail.tix.test>", "<tix.two@mail.tix.test>"],
        ),
    )
    msg = email.message_from_bytes(composed.raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Message-ID"] == composed.message_id
    return msg


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_in_both_languages_with_text_and_html(kind: str, language: str) -> None:
    msg = _mail(kind, language, body="Please call first.", reason="Still beeps.")
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    text = plain.get_content()
    assert "CoolFix" in text
    assert str(msg["Subject"]).startswith("[COOLFIX-12] ")
    markup = html.get_content()
    assert "<b>down</b>" not in markup  # ticket text is escaped in the HTML part
    if kind in ("offer", "comment", "update", "rework", "welcome"):
        commands = (
            ("ACCEPT", "RESOLVED <summary>") if language == "en" else ("ПРИНЯТО", "ВЫПОЛНЕНО")
        )
        assert all(c in text for c in commands)
    if kind in ("rework", "recall"):
        assert "Still beeps." in text


def test_threading_reply_address_and_loop_headers() -> None:
    msg = _mail("offer", "en")
    token = tokens.token_for(DELEGATION, SECRET)
    assert msg["Reply-To"] == f"tix+{token}@mail.tix.test"
    assert tokens.token_from_message_id(str(msg["Message-ID"]), domain="mail.tix.test") == token
    assert msg["In-Reply-To"] == "<tix.two@mail.tix.test>"
    assert msg["References"] == "<tix.one@mail.tix.test> <tix.two@mail.tix.test>"
    for name, value in loops.outbound_headers("mailgw").items():
        assert msg[name] == value
    # Our own mail, echoed back to us, is recognised as a loop by the inbound side.
    echoed = parsing.parse_inbound(msg.as_bytes(), reply_domain="mail.tix.test")
    verdict = loops.classify(
        echoed,
        participant_addresses=["dispatch@coolfix.example"],
        our_addresses=["tix@mail.tix.test"],
        delegation_id=DELEGATION,
        secret=SECRET,
        reply_domain="mail.tix.test",
    )
    assert verdict.kind == "loop"


def test_russian_subject_is_encoded_and_reads_back() -> None:
    msg = _mail("offer", "ru", title="Чиллер 3: авария")
    assert str(msg["Subject"]) == "[COOLFIX-12] Новая заявка: Чиллер 3: авария"


def test_a_mail_without_a_delegation_has_no_reply_token() -> None:
    composed = compose(
        kind="notice",
        language="en",
        values={"about": "hello", "problem": "unknown", "participant": "x"},
        to=["mallory@evil.example"],
        from_name="Tix",
        domain="mail.tix.test",
        local="tix",
        secret=SECRET,
        adapter_id="mailgw",
        thread=Thread(),
    )
    msg = email.message_from_bytes(composed.raw, policy=email.policy.default)
    assert msg["Reply-To"] == "tix@mail.tix.test"
    assert tokens.token_from_message_id(str(msg["Message-ID"])) is None
    assert "could not be applied" in render_text("notice", "en", {"problem": "unknown"})
