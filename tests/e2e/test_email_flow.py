"""E-mail participants end to end (with Russian text on purpose): an upstream node process
over the machine's RabbitMQ, an adapter process hosting the participant, a real SMTP server as
the participants' mailboxes, replies by SMTP to the adapter's listener and by IMAP from a real
Dovecot mailbox."""

# ruff: noqa: RUF001

from __future__ import annotations

import email.policy
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.db import node_database_url
from tests.support.mail import (
    AdapterProcess,
    Dovecot,
    Received,
    SmtpSink,
    reply_to,
    send_mail,
)
from tests.support.nodes import (
    TIX,
    NodeFactory,
    NodeProcess,
    delete_queues,
    eventually,
    run_id,
)

BOSS = "boss@eastwood.example"
OFFICE = "office@eastwood.example"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Adapters:
    def __init__(self, amqp_url: str, workdir: Path, backend: str, databases: ExitStack) -> None:
        self.amqp_url = amqp_url
        self.workdir = workdir
        self.backend = backend
        self.databases = databases
        self.started: list[AdapterProcess] = []
        self.hosted: list[str] = []

    def make(self, name: str, mail_env: dict[str, str]) -> AdapterProcess:
        adapter = AdapterProcess(
            f"{name}-{run_id()}",
            self.workdir,
            amqp_url=self.amqp_url,
            mail_env=mail_env,
            database_url=node_database_url(self.backend, self.databases, tables=False),
        )
        adapter.init()
        self.started.append(adapter)
        adapter.start()
        return adapter

    def close(self) -> None:
        for adapter in self.started:
            adapter.close()
            # pytest shows a teardown's output when the test failed
            print(f"--- log of {adapter.account_id} ---\n{adapter.log_tail(80)}")
        delete_queues(self.amqp_url, [a.account_id for a in self.started] + self.hosted)


@pytest.fixture
def adapters(amqp_url: str, tmp_path: Path, db_backend: str) -> Iterator[Adapters]:
    with ExitStack() as databases:
        made = Adapters(amqp_url, tmp_path, db_backend, databases)
        yield made
        made.close()


def invite_participant(
    upstream: NodeProcess,
    adapter: AdapterProcess,
    adapters: Adapters,
    *,
    name: str = "Eastwood Electric",
    emails: list[str] | None = None,
    language: str = "en",
) -> dict[str, Any]:
    invite = upstream.call("POST", "/api/v1/links/invitations", json={"contract": {}})
    participant: dict[str, Any] = adapter.call(
        "POST",
        "/api/v1/participants",
        json={
            "token": invite["token"],
            "name": name,
            "emails": emails or [BOSS, OFFICE],
            "language": language,
        },
        expect=201,
    )
    adapters.hosted.append(participant["account_id"])

    def linked() -> bool:
        items = upstream.call("GET", "/api/v1/links")["items"]
        return any(item["partner"] == participant["account_id"] for item in items)

    eventually(linked, timeout=60, what="the upstream to see the participant's link.accept")
    return participant


def delegate(upstream: NodeProcess, partner: str, title: str = "ATM 0417 out of service") -> str:
    ticket = upstream.call(
        "POST",
        "/api/v1/tickets",
        json={
            "title": title,
            "description": "Card reader fault reported by the branch.",
            "priority": "high",
            "service_object": {"site": "Branch 12", "equipment": "ATM 0417"},
        },
    )
    upstream.call(
        "POST",
        f"/api/v1/tickets/{ticket['number']}/delegations",
        json={"partner": partner, "note": "please send an engineer"},
    )
    return str(ticket["number"])


def mail_of(sink: SmtpSink, address: str, subject_part: str) -> Received:
    def found() -> Received | None:
        for message in sink.to(address):
            if subject_part in str(message.message["Subject"]):
                return message
        return None

    try:
        return eventually(found, timeout=60, what=f"a mail '{subject_part}' to {address}")
    except AssertionError as exc:
        subjects = [str(m.message["Subject"]) for m in sink.to(address)]
        raise AssertionError(f"{exc}; mails to {address}: {subjects}") from None


def delegation_of(upstream: NodeProcess, number: str) -> dict[str, Any]:
    result: dict[str, Any] = upstream.ticket(number)["delegations"][0]
    return result


def test_participant_gets_the_offer_by_mail_and_accepts_and_resolves_by_smtp_reply(
    nodes: NodeFactory, adapters: Adapters, sink: SmtpSink
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    adapter = adapters.make("mailgw", {"TIX_SMTP_URL": sink.url})
    participant = invite_participant(acme, adapter, adapters)
    assert participant["name"] == "Eastwood Electric"
    assert participant["emails"] == [BOSS, OFFICE]

    welcome = mail_of(sink, BOSS, "Welcome")
    assert welcome.rcpt_tos == (BOSS, OFFICE)
    assert "ACCEPT" in welcome.text() and "RESOLVED <summary>" in welcome.text()

    number = delegate(acme, participant["account_id"])
    offer = mail_of(sink, BOSS, "New ticket")
    msg = offer.message
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Tix-Loop"] == adapter.account_id
    reply_address = str(msg["Reply-To"])
    assert reply_address.startswith("tix+") and reply_address.endswith("@mail.tix.test")
    assert str(msg["Subject"]).startswith("[") and "ATM 0417 out of service" in str(msg["Subject"])
    assert msg.get_body(preferencelist=("html",)) is not None
    assert "Card reader fault" in offer.text() and "please send an engineer" in offer.text()

    # What the upstream does to the ticket reaches the participant as mails of the thread.
    acme.call(
        "POST",
        f"/api/v1/tickets/{number}/comments",
        json={"body": "Access code for the back door: 4711.", "visibility": "partner"},
    )
    acme.call("PATCH", f"/api/v1/tickets/{number}", json={"priority": "critical"})
    comment = mail_of(sink, BOSS, "Comment:")
    assert "Access code for the back door: 4711." in comment.text()
    assert comment.message["In-Reply-To"] == msg["Message-ID"]
    assert str(msg["Message-ID"]) in str(comment.message["References"])
    changed = mail_of(sink, BOSS, "Ticket changed")
    assert "critical" in changed.text()

    accept = reply_to(
        offer, sender=f"Ivan Petrov <{BOSS}>", text="ACCEPT\nWe will be on site at 10."
    )
    send_mail(adapter.smtp_listen_port, accept, BOSS, [reply_address])
    eventually(
        lambda: delegation_of(acme, number)["state"] == "accepted",
        what="the upstream to see the e-mail accept",
    )

    def comment_arrived() -> bool:
        comments = acme.call("GET", f"/api/v1/tickets/{number}/comments")["items"]
        return any(
            "on site at 10" in c["body"]
            and c["author"] == "Ivan Petrov via e-mail (Eastwood Electric)"
            for c in comments
        )

    eventually(comment_arrived, what="the participant's comment at the upstream")

    # A phone photo is larger than what travels inline: the upstream fetches it by digest
    # from the adapter's API, with a node token addressed to the hosted account.
    photo = b"\x89PNG\r\n\x1a\n" + os.urandom(200_000)
    note = b"%PDF-1.4\n" + b"small service report\n" * 20
    resolved = reply_to(
        offer,
        sender=OFFICE,
        text="RESOLVED Card reader replaced, tested OK.",
        attachments=[("reader.png", "image/png", photo), ("report.pdf", "application/pdf", note)],
    )
    send_mail(adapter.smtp_listen_port, resolved, OFFICE, [reply_address])
    eventually(
        lambda: delegation_of(acme, number)["state"] == "resolved",
        what="the upstream to see the e-mail resolution",
    )
    assert delegation_of(acme, number)["resolution"] == "Card reader replaced, tested OK."

    def content(filename: str) -> bytes | None:
        items = acme.call("GET", f"/api/v1/tickets/{number}/attachments")["items"]
        for item in items:
            if item["filename"] == filename:
                response = acme.client.get(f"/api/v1/tickets/{number}/attachments/{item['id']}")
                return response.content if response.status_code == 200 else None
        return None

    assert eventually(lambda: content("reader.png"), what="the photo at the upstream") == photo
    assert eventually(lambda: content("report.pdf"), what="the PDF at the upstream") == note

    # The same reply again (a resend, an IMAP re-fetch): deduplicated by Message-ID.
    send_mail(adapter.smtp_listen_port, resolved, OFFICE, [reply_address])
    # A stranger replying to the thread changes nothing and gets one polite notice.
    spoof = reply_to(offer, sender="mallory@evil.example", text="DECLINE no longer needed")
    send_mail(adapter.smtp_listen_port, spoof, "mallory@evil.example", [reply_address])
    notice = mail_of(sink, "mallory@evil.example", "not applied")
    assert "Reply-To" not in notice.message or "+" not in str(notice.message["Reply-To"])
    assert delegation_of(acme, number)["state"] == "resolved"

    # The upstream asks for rework, then confirms the second resolution: both are mails.
    delegation_id = delegation_of(acme, number)["id"]
    acme.call(
        "POST", f"/api/v1/delegations/{delegation_id}/rework", json={"reason": "Still beeps."}
    )
    rework = mail_of(sink, BOSS, "Please rework")
    assert "Still beeps." in rework.text()
    again = reply_to(rework, sender=BOSS, text="RESOLVED Replaced the beeper too.")
    send_mail(adapter.smtp_listen_port, again, BOSS, [reply_address])
    eventually(
        lambda: delegation_of(acme, number)["resolution"] == "Replaced the beeper too.",
        what="the second resolution",
    )
    acme.call("POST", f"/api/v1/delegations/{delegation_id}/confirm", json={})
    mail_of(sink, BOSS, "Resolution confirmed")

    # A recalled offer is a mail too; a reply to it afterwards changes nothing.
    second = delegate(acme, participant["account_id"], title="Lobby light flickers")
    second_offer = mail_of(sink, BOSS, "Lobby light flickers")
    second_id = delegation_of(acme, second)["id"]
    acme.call("POST", f"/api/v1/delegations/{second_id}/recall", json={"reason": "Fixed it."})
    withdrawn = mail_of(sink, BOSS, "Ticket withdrawn")
    assert "Fixed it." in withdrawn.text()
    late = reply_to(second_offer, sender=BOSS, text="ACCEPT")
    send_mail(adapter.smtp_listen_port, late, BOSS, [str(second_offer.message["Reply-To"])])
    closed_notice = mail_of(sink, BOSS, "not applied")
    assert "closed" in closed_notice.text()
    assert delegation_of(acme, second)["state"] == "recalled"


def test_a_russian_participant_replies_into_an_imap_mailbox_the_adapter_polls(
    nodes: NodeFactory, adapters: Adapters, sink: SmtpSink, dovecot: Dovecot
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    adapter = adapters.make("mailgw", {"TIX_SMTP_URL": sink.url, "TIX_IMAP_URL": dovecot.url})
    participant = invite_participant(
        acme, adapter, adapters, name="Холод-Сервис", emails=[BOSS], language="ru"
    )
    assert participant["account_id"].startswith("holod-servis-")
    welcome = mail_of(sink, BOSS, "Подключение")
    assert "ПРИНЯТО" in welcome.text() and "ВЫПОЛНЕНО <итог>" in welcome.text()

    number = delegate(acme, participant["account_id"], title="Чиллер 3: авария")
    offer = mail_of(sink, BOSS, "Новая заявка")
    assert "Чиллер 3: авария" in str(offer.message["Subject"])

    # The company's mail server put the reply into the mailbox the adapter polls.
    reply = reply_to(offer, sender=BOSS, text="ПРИНЯТО\nБудем в 10:00.")
    raw = reply.as_bytes(policy=email.policy.SMTP)
    dovecot.append(raw)
    eventually(
        lambda: delegation_of(acme, number)["state"] == "accepted",
        what="the upstream to see the accept read over IMAP",
    )
    eventually(lambda: dovecot.unseen() == 0, what="the reply to be flagged seen")

    def comments() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = acme.call("GET", f"/api/v1/tickets/{number}/comments")[
            "items"
        ]
        return items

    eventually(lambda: any("Будем в 10:00" in c["body"] for c in comments()), what="comment")
    # The same message again (a client that re-uploads, a second copy): read, flagged, dropped.
    dovecot.append(raw)
    eventually(lambda: dovecot.unseen() == 0, what="the copy to be flagged seen")
    done = reply_to(offer, sender=BOSS, text="ВЫПОЛНЕНО Заменили датчик давления.")
    dovecot.append(done.as_bytes(policy=email.policy.SMTP))
    eventually(
        lambda: delegation_of(acme, number)["state"] == "resolved",
        what="the upstream to see the resolution read over IMAP",
    )
    assert [c["body"] for c in comments()].count("Будем в 10:00.") == 1


def test_cli_invite_is_picked_up_by_the_running_adapter_and_bad_input_changes_nothing(
    nodes: NodeFactory, adapters: Adapters, sink: SmtpSink
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    adapter = adapters.make("mailgw", {"TIX_SMTP_URL": sink.url})
    invite = acme.call("POST", "/api/v1/links/invitations", json={"contract": {}})

    for body in (
        {"token": "not-a-token-at-all", "name": "X", "emails": [BOSS]},
        {"token": invite["token"], "name": "X", "emails": ["Bob <a@b.example> <c@d.example>"]},
        {"token": invite["token"], "name": "X", "emails": [BOSS], "language": "de"},
        {"token": invite["token"], "name": " ", "emails": [BOSS]},
    ):
        response = adapter.client.post("/api/v1/participants", json=body)
        assert 400 <= response.status_code < 500, response.text
        assert "detail" in response.json()
    assert adapter.call("GET", "/api/v1/participants")["items"] == []

    result = subprocess.run(
        [
            TIX, "adapter", "email", "invite", "--token", invite["token"],
            "--name", "Westgate Cabling", "--email", OFFICE, "--language", "en",
        ],
        env=adapter.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (participant,) = adapter.call("GET", "/api/v1/participants")["items"]
    adapters.hosted.append(participant["account_id"])
    assert participant["name"] == "Westgate Cabling" and participant["emails"] == [OFFICE]

    def linked() -> bool:
        items = acme.call("GET", "/api/v1/links")["items"]
        return any(item["partner"] == participant["account_id"] for item in items)

    eventually(linked, timeout=60, what="the upstream to see the CLI participant's link.accept")
    mail_of(sink, OFFICE, "Welcome")
    delegate(acme, participant["account_id"], title="Patch panel 4")
    mail_of(sink, OFFICE, "Patch panel 4")  # the running adapter consumes the new account
