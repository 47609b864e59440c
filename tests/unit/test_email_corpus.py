"""The reply-mail corpus (tests/fixtures/mail): each real-world shape and its expected outcome.

Every ``.eml`` there is parsed, threaded and classified the way the adapter will do it, and the
verdict, command, argument, comment and attachments are compared with ``expected.json``. The
setup in that file plays the adapter's database: which delegations are open, which subject tags
exist and which addresses belong to the participant.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from adapters.email import loops, parsing, tokens

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
EXPECTED: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
SETUP: dict[str, Any] = EXPECTED["setup"]
SECRET = SETUP["secret"].encode()
DOMAIN: str = SETUP["reply_domain"]
LABEL_OF = {uuid: label for label, uuid in SETUP["delegations"].items()}


def _delegation_for(key: loops.ThreadKey) -> str | None:
    """What the adapter's lookup finds: an open delegation's token first, then the subject tag."""
    for token in key.tokens:
        for label in SETUP["open_delegations"]:
            delegation_id = SETUP["delegations"][label]
            if tokens.verify(token, delegation_id, SECRET):
                return str(delegation_id)
    label = SETUP["subject_tags"].get(key.subject_tag or "")
    return None if label is None else str(SETUP["delegations"][label])


def run(raw: bytes) -> tuple[parsing.InboundMail, str | None, loops.Verdict]:
    mail = parsing.parse_inbound(
        raw, reply_domain=DOMAIN, max_attachment_bytes=SETUP["max_attachment_bytes"]
    )
    delegation_id = _delegation_for(loops.thread_key(mail, reply_domain=DOMAIN))
    label = LABEL_OF.get(delegation_id or "")
    verdict = loops.classify(
        mail,
        participant_addresses=SETUP["participants"].get(label, []),
        our_addresses=SETUP["our_addresses"],
        our_domains=SETUP["our_domains"],
        delegation_id=delegation_id,
        secret=SECRET,
        reply_domain=DOMAIN,
        trusted_authserv_ids=SETUP["trusted_authserv_ids"],
    )
    return mail, label, verdict


@cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS / "build_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_has_at_least_thirty_mails_and_an_expectation_for_each() -> None:
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert len(files) >= 30
    assert files == set(EXPECTED["mails"])


def test_corpus_files_are_what_the_generator_writes() -> None:
    built: dict[str, bytes] = _generator().build()
    assert set(built) == set(EXPECTED["mails"])
    for name, data in built.items():
        assert (CORPUS / name).read_bytes() == data, f"{name}: run build_corpus.py again"


def test_corpus_setup_matches_the_generator() -> None:
    generator = _generator()
    assert generator.SECRET == SECRET
    assert generator.DOMAIN == DOMAIN
    assert SETUP["delegations"] == {"A": generator.DELEGATION_A, "B": generator.DELEGATION_B}


@pytest.mark.parametrize("name", sorted(EXPECTED["mails"]))
def test_corpus_mail_has_its_expected_outcome(name: str) -> None:
    want: dict[str, Any] = EXPECTED["mails"][name]
    mail, label, verdict = run((CORPUS / name).read_bytes())

    assert label == want["delegation"]
    assert verdict.kind == want["verdict"], verdict
    if "reason" in want:
        assert verdict.reason == want["reason"]
    if "reason_contains" in want:
        assert want["reason_contains"] in verdict.reason
    assert verdict.polite_reply is want.get("polite_reply", False)
    assert sorted(verdict.failed_recipients) == sorted(want.get("failed_recipients", []))
    if "subject_tag" in want:
        assert mail.subject_tag == want["subject_tag"]
    if "sender_name" in want:
        assert mail.sender_name == want["sender_name"]
    if "text_from_html" in want:
        assert mail.text_from_html is want["text_from_html"]

    if verdict.kind != "process":
        assert verdict.reply is None  # never a status, never a comment
        return
    reply = verdict.reply
    assert reply is not None
    assert reply.command == want["action"]
    assert reply.argument == want["argument"]
    assert reply.forwarded is want.get("forwarded", False)
    assert reply.is_empty is want.get("empty", False)
    if "comment" in want:
        assert reply.comment == want["comment"]
    for text in want.get("comment_contains", []):
        assert text in reply.comment
    for text in want.get("comment_excludes", []):
        assert text not in reply.comment
    got = [
        {"filename": a.filename, "content_type": a.content_type, "inline": a.inline}
        for a in mail.attachments
    ]
    assert got == want["attachments"]
    assert all(a.data for a in mail.attachments)


@pytest.mark.parametrize("name", sorted(EXPECTED["mails"]))
def test_corpus_mail_reads_the_same_with_crlf_line_endings(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    _, _, lf_verdict = run(raw)
    _, _, crlf_verdict = run(crlf)
    assert crlf_verdict == lf_verdict


def test_corpus_attachments_keep_their_bytes() -> None:
    generator = _generator()
    mail, _, _ = run((CORPUS / "02-gmail-en-resolved-colon-jpeg.eml").read_bytes())
    assert mail.attachments[0].data == generator.tiny_jpeg()
    assert mail.attachments[0].data.startswith(b"\xff\xd8\xff")
    mail, _, _ = run((CORPUS / "15-mailru-vypolneno-pdf.eml").read_bytes())
    assert mail.attachments[0].data == generator.tiny_pdf()
    mail, _, _ = run((CORPUS / "07-outlook-inline-signature-image.eml").read_bytes())
    assert mail.attachments[0].data == generator.tiny_png()
    assert mail.attachments[0].content_id == "image001.png@01DA6EDE.6A3B2F10"


def test_corpus_bounces_lead_back_to_the_mail_that_bounced() -> None:
    generator = _generator()
    for name, message_id in (
        ("26-postfix-dsn-bounce.eml", generator.MID_A),
        ("27-gmail-dsn-bounce.eml", generator.MID_A2),
    ):
        mail, _, verdict = run((CORPUS / name).read_bytes())
        assert mail.bounced_message_id == message_id
        assert loops.thread_key(mail).message_ids[0] == message_id
        assert verdict.reports[0].status == "5.1.1"
        assert verdict.token == generator.TOKEN_A  # the DSN names a mail of delegation A


def test_corpus_an_attachment_over_the_limit_is_listed_not_kept() -> None:
    raw = (CORPUS / "15-mailru-vypolneno-pdf.eml").read_bytes()
    mail = parsing.parse_inbound(raw, reply_domain=DOMAIN, max_attachment_bytes=100)
    assert mail.attachments == ()
    assert mail.skipped_attachments == ("Акт_ACME-1042.pdf",)
