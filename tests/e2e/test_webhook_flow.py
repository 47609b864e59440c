"""A company with its own help desk joins a chain through the webhook adapter.

An upstream node process and a ``tix adapter webhook serve`` process over the machine's
RabbitMQ; the help desk is a real HTTP server on loopback started by the test. Offers, comments
and confirmations reach it signed (HMAC-SHA256 over timestamp and body) with its field and
status names, in order, also after it was down for a while; it answers through the signed
inbound endpoint (accept, comment, attachment, status), and replayed, stale, forged or
malformed answers are refused and change nothing.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.webhook import signing
from exchange.signing import kid_of, load_key_file
from tests.e2e.test_rekey import partner_kid, rejected
from tests.support.db import node_database_url
from tests.support.helpdesk import HelpDesk, running_helpdesk
from tests.support.nodes import (
    TIX,
    NodeFactory,
    NodeProcess,
    delete_queues,
    eventually,
    run_id,
)

MAPPING = {
    "fields": {"title": "subject", "ticket_id": "external_id"},
    "status_out": {"offered": "new", "open": "open", "in_progress": "open", "resolved": "solved"},
    "status_in": {"open": "in_progress", "hold": "on_hold", "solved": "resolved"},
    "priority_out": {"critical": "urgent"},
}


@pytest.fixture
def helpdesk() -> Iterator[HelpDesk]:
    with running_helpdesk() as server:
        yield server


class AdapterProcess(NodeProcess):
    """``tix adapter webhook serve`` in its own process (an ordinary node plus the adapter)."""

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super().env()
        env.update(
            TIX_WEBHOOK_POLL_SECONDS="0.1",
            TIX_WEBHOOK_RETRY_INITIAL_SECONDS="0.1",
            TIX_WEBHOOK_RETRY_MAX_SECONDS="0.5",
        )
        env.update(extra or {})
        return env

    def start(self, extra_env: dict[str, str] | None = None, *, wait_broker: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [TIX, "adapter", "webhook", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env(extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        eventually(self._healthy, timeout=30, what=f"{self.account_id} to answer")
        self.login()
        if wait_broker:
            self.wait_broker()


@pytest.fixture
def adapter(amqp_url: str, tmp_path: Path, db_backend: str) -> Iterator[AdapterProcess]:
    with ExitStack() as databases:
        process = AdapterProcess(
            f"hooks-{run_id()}",
            tmp_path,
            amqp_url=amqp_url,
            database_url=node_database_url(db_backend, databases, tables=False),
        )
        process.init()
        process.start()
        hosted: list[str] = []
        process.hosted = hosted  # type: ignore[attr-defined]
        yield process
        process.close()
        delete_queues(amqp_url, [process.account_id, *hosted])


def operator(adapter: AdapterProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tix adapter webhook ARGS`` as the adapter's operator, in its environment."""
    return subprocess.run(
        [TIX, "adapter", "webhook", *args],
        env=adapter.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def join(adapter: AdapterProcess, token: str, helpdesk: HelpDesk) -> tuple[str, str]:
    """The help desk joins with the upstream's invitation; its account and secret."""
    participant = adapter.call(
        "POST",
        "/api/v1/webhook-participants",
        json={"token": token, "name": "Zen Co", "url": helpdesk.url, "mapping": MAPPING},
        expect=201,
    )
    account, secret = str(participant["account_id"]), str(participant["secret"])
    adapter.hosted.append(account)  # type: ignore[attr-defined]
    return account, secret


def signed(secret: str, payload: Any, *, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if at is None else at
    return body, {
        "Content-Type": "application/json",
        signing.HEADER: signing.header(secret.encode(), stamp, body),
    }


def test_a_help_desk_works_a_ticket_through_signed_webhooks(
    nodes: NodeFactory, adapter: AdapterProcess, helpdesk: HelpDesk
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    invite = acme.call("POST", "/api/v1/links/invitations", json={"contract": {}})
    bad = adapter.client.post(
        "/api/v1/webhook-participants",
        json={"token": invite["token"], "name": "Zen Co", "url": "ftp://desk.example/x"},
    )
    assert bad.status_code == 400, bad.text
    account, secret = join(adapter, invite["token"], helpdesk)
    listed = adapter.call("GET", "/api/v1/webhook-participants")["items"]
    assert [p["account_id"] for p in listed] == [account] and "secret" not in listed[0]
    eventually(
        lambda: any(i["partner"] == account for i in acme.call("GET", "/api/v1/links")["items"]),
        what="the link at the upstream",
    )

    number = acme.call(
        "POST",
        "/api/v1/tickets",
        json={"title": "ATM 0417 out of service", "priority": "critical"},
    )["number"]
    acme.call("POST", f"/api/v1/tickets/{number}/delegations", json={"partner": account})
    eventually(lambda: helpdesk.events() == ["offer"], what="the offer at the help desk")

    headers, body = helpdesk.received()[0]
    stamp = int(headers["x-tix-signature"].split(",")[0][2:])
    assert signing.verify(
        secret.encode(), headers["x-tix-signature"], body, now=int(time.time())
    ) == signing.digest(secret.encode(), stamp, body)
    offer = json.loads(body)
    assert headers["x-tix-event"] == "offer" and headers["x-tix-event-id"] == offer["event_id"]
    ticket = offer["ticket"]
    assert (ticket["subject"], ticket["priority"], ticket["status"]) == (
        "ATM 0417 out of service",
        "urgent",
        "new",
    )
    assert (ticket["upstream"]["account"], ticket["upstream"]["ref"]) == (acme.account_id, number)
    ticket_id = ticket["external_id"]
    inbound = f"/webhooks/{account}/inbound"

    def delegation() -> dict[str, Any]:
        found: dict[str, Any] = acme.ticket(number)["delegations"][0]
        return found

    # Refused answers change nothing: forged, stale, unsigned, replayed, malformed, unmapped.
    accept = {"action": "accept", "ticket_id": ticket_id}
    body, good = signed(secret, accept)
    forged = signed("not-the-secret", accept)
    stale = signed(secret, accept, at=int(time.time()) - 3600)
    refusals: list[tuple[bytes, dict[str, str], int, str]] = [
        (forged[0], forged[1], 401, "signature does not match"),
        (stale[0], stale[1], 401, "stale signature"),
        (body, {"Content-Type": "application/json"}, 401, "missing signature"),
    ]
    for payload in (
        {"action": "explode", "ticket_id": ticket_id},
        {"action": "status", "ticket_id": ticket_id, "status": "closed"},
        {"action": "accept", "ticket_id": "not-a-ticket"},
        {"action": "attachment", "ticket_id": ticket_id, "filename": "a", "content_base64": "@@"},
    ):
        raw, hdrs = signed(secret, payload)
        code = 404 if payload["ticket_id"] == "not-a-ticket" else 400
        refusals.append((raw, hdrs, code, ""))
    with httpx.Client(base_url=f"http://127.0.0.1:{adapter.port}", timeout=15) as desk:
        for raw, hdrs, code, reason in refusals:
            response = desk.post(inbound, content=raw, headers=hdrs)
            assert response.status_code == code, response.text
            assert reason in response.json()["detail"]
        assert (
            desk.post("/webhooks/nobody-1234/inbound", content=body, headers=good).status_code
            == 401
        )
        assert delegation()["state"] == "offered"

        response = desk.post(inbound, content=body, headers=good)
        assert response.status_code == 200, response.text
        assert response.json()["ticket"]["status"] == "open"
        replay = desk.post(inbound, content=body, headers=good)
        assert replay.status_code == 401 and replay.json()["detail"] == "replayed request"
        eventually(lambda: delegation()["state"] == "accepted", what="the accept upstream")

        # The help desk is down while the upstream comments and raises the priority.
        helpdesk.down = True
        acme.call(
            "POST",
            f"/api/v1/tickets/{number}/comments",
            json={"body": "The branch opens at 9", "visibility": "partner"},
        )
        acme.call("PATCH", f"/api/v1/tickets/{number}", json={"priority": "high"})
        eventually(lambda: helpdesk.refused >= 2, what="deliveries refused while down")
        helpdesk.down = False
        eventually(
            lambda: helpdesk.events() == ["offer", "comment", "update"], what="the queued events"
        )
        comment = json.loads(helpdesk.received()[1][1])
        assert comment["comment"]["body"] == "The branch opens at 9"
        update = json.loads(helpdesk.received()[2][1])
        assert update["changes"] == {"priority": "high"} and update["ticket"]["priority"] == "high"
        acme.call(
            "POST",
            f"/api/v1/tickets/{number}/attachments",
            files={"file": ("site-plan.txt", b"vault behind the counter\n", "text/plain")},
        )
        eventually(lambda: helpdesk.events()[-1:] == ["attachment"], what="the upstream's file")
        sent = json.loads(helpdesk.received()[-1][1])["attachment"]
        assert (sent["filename"], sent["size"]) == ("site-plan.txt", 25)
        assert base64.b64decode(sent["content_base64"]) == b"vault behind the counter\n"

        for payload in (
            {
                "action": "comment",
                "ticket_id": ticket_id,
                "body": "Engineer dispatched",
                "author": "Kim",
            },
            {
                "action": "attachment",
                "ticket_id": ticket_id,
                "filename": "report.txt",
                "content_type": "text/plain",
                "content_base64": base64.b64encode(b"card reader replaced\n").decode(),
            },
            {
                "action": "status",
                "ticket_id": ticket_id,
                "status": "solved",
                "note": "reader swapped",
            },
        ):
            raw, hdrs = signed(secret, payload)
            response = desk.post(inbound, content=raw, headers=hdrs)
            assert response.status_code == 200, response.text
    eventually(lambda: delegation()["state"] == "resolved", what="the resolution upstream")
    assert delegation()["resolution"] == "reader swapped"
    comments = acme.call("GET", f"/api/v1/tickets/{number}/comments")["items"]
    assert [c["body"] for c in comments] == ["The branch opens at 9", "Engineer dispatched"]
    assert comments[1]["author"].startswith("Kim (via help desk)")
    files = eventually(
        lambda: [
            f["filename"]
            for f in acme.call("GET", f"/api/v1/tickets/{number}/attachments")["items"]
            if f["filename"] == "report.txt"
        ],
        what="the help desk's attachment upstream",
    )
    assert files == ["report.txt"]

    acme.call("POST", f"/api/v1/delegations/{delegation()['id']}/confirm", json={})
    eventually(lambda: helpdesk.events()[-1:] == ["confirm"], what="the confirmation")
    assert helpdesk.events() == ["offer", "comment", "update", "attachment", "confirm"]

    # The mapping changes: the next event speaks the new names.
    patched = adapter.call(
        "PATCH",
        f"/api/v1/webhook-participants/{account}",
        json={"mapping": {"fields": {"title": "summary", "ticket_id": "external_id"}}},
    )
    assert patched["mapping"]["fields"]["title"] == "summary"
    refused = adapter.client.patch(
        f"/api/v1/webhook-participants/{account}", json={"url": "gopher://desk.example/"}
    )
    assert refused.status_code == 400, refused.text
    assert (
        adapter.client.patch("/api/v1/webhook-participants/nobody-1234", json={}).status_code == 404
    )

    # A second offer, declined by the help desk; a late answer to the finished ticket is 409.
    second = acme.call("POST", "/api/v1/tickets", json={"title": "Printer jam"})["number"]
    acme.call("POST", f"/api/v1/tickets/{second}/delegations", json={"partner": account})
    eventually(lambda: helpdesk.events()[-1:] == ["offer"], what="the second offer")
    second_offer = json.loads(helpdesk.received()[-1][1])["ticket"]
    assert second_offer["summary"] == "Printer jam" and "subject" not in second_offer
    offered = second_offer["external_id"]
    with httpx.Client(base_url=f"http://127.0.0.1:{adapter.port}", timeout=15) as desk:
        raw, hdrs = signed(
            secret, {"action": "decline", "ticket_id": offered, "reason": "not our area"}
        )
        assert desk.post(inbound, content=raw, headers=hdrs).status_code == 200
        raw, hdrs = signed(secret, {"action": "accept", "ticket_id": offered})
        assert desk.post(inbound, content=raw, headers=hdrs).status_code == 409
    eventually(
        lambda: acme.ticket(second)["delegations"][0]["state"] == "declined",
        what="the decline upstream",
    )
    assert acme.ticket(second)["delegations"][0]["reason"] == "not our area"
    for headers, body in helpdesk.received():
        assert signing.verify(
            secret.encode(), headers["x-tix-signature"], body, now=int(time.time())
        )
    assert acme.rejected() == []


def rotate_hosted(adapter: AdapterProcess, account: str, overlap: int) -> str:
    """Run ``tix adapter webhook keys rotate`` as the adapter's operator; return the new kid."""
    done = operator(
        adapter, "keys", "rotate", "--account", account, "--overlap-seconds", str(overlap)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    key_file = adapter.workdir / adapter.account_id / "hosted" / f"{account}.key"
    return kid_of(load_key_file(key_file).public_key())


def offer_and_accept(
    acme: NodeProcess, adapter: AdapterProcess, helpdesk: HelpDesk, account: str, secret: str
) -> str:
    """acme offers a ticket to the help desk, which accepts it; the upstream's ticket number."""
    number = str(acme.call("POST", "/api/v1/tickets", json={"title": "Lift 3 stuck"})["number"])
    offers = helpdesk.events().count("offer")
    acme.call("POST", f"/api/v1/tickets/{number}/delegations", json={"partner": account})
    eventually(lambda: helpdesk.events().count("offer") > offers, what="the offer at the desk")
    ticket_id = json.loads(helpdesk.received()[-1][1])["ticket"]["external_id"]
    body, headers = signed(secret, {"action": "accept", "ticket_id": ticket_id})
    answer = adapter.client.post(f"/webhooks/{account}/inbound", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return number


def test_a_hosted_account_rotates_its_key_with_the_overlap_window(
    nodes: NodeFactory, adapter: AdapterProcess, helpdesk: HelpDesk
) -> None:
    acme = nodes("acme")
    invite = acme.call("POST", "/api/v1/links/invitations", json={"contract": {}})
    account, secret = join(adapter, invite["token"], helpdesk)
    eventually(lambda: partner_kid(acme, account) is not None, what="the link at the upstream")
    first_kid = partner_kid(acme, account)

    def state(number: str) -> str:
        return str(acme.ticket(number)["delegations"][0]["state"])

    unknown = operator(adapter, "keys", "rotate", "--account", "nobody-1234")
    assert unknown.returncode == 1 and "not a webhook participant" in unknown.stdout

    second_kid = rotate_hosted(adapter, account, overlap=3600)
    assert second_kid != first_kid
    eventually(lambda: partner_kid(acme, account) == second_kid, what="acme pins the new key")
    # The adapter still runs on the old key: inside the window acme takes what it signs.
    old_signed = offer_and_accept(acme, adapter, helpdesk, account, secret)
    eventually(lambda: state(old_signed) == "accepted", what="an accept signed with the old key")
    # Restarted, the adapter signs with the new key.
    adapter.stop()
    adapter.start()
    new_signed = offer_and_accept(acme, adapter, helpdesk, account, secret)
    eventually(lambda: state(new_signed) == "accepted", what="an accept signed with the new key")

    # No overlap: the key the adapter still runs on is refused once acme has pinned the next.
    third_kid = rotate_hosted(adapter, account, overlap=0)
    eventually(lambda: partner_kid(acme, account) == third_kid, what="the second rekey")
    before = rejected(acme, "unknown_kid", "delegation.accept")
    refused = offer_and_accept(acme, adapter, helpdesk, account, secret)
    eventually(
        lambda: rejected(acme, "unknown_kid", "delegation.accept") == before + 1,
        what="an accept signed with a key past its window refused",
    )
    assert state(refused) == "offered"
    adapter.stop()
    adapter.start()
    accepted = offer_and_accept(acme, adapter, helpdesk, account, secret)
    eventually(lambda: state(accepted) == "accepted", what="an accept after the restart")
    assert [r["type"] for r in acme.rejected()] == ["delegation.accept"]  # the one past its window


def signatures(header: str) -> list[str]:
    return [part[3:] for part in header.split(",") if part.startswith("v1=")]


def test_a_help_desk_secret_is_rolled_with_an_overlap_then_revoked(
    nodes: NodeFactory, adapter: AdapterProcess, helpdesk: HelpDesk
) -> None:
    acme = nodes("acme")
    invite = acme.call("POST", "/api/v1/links/invitations", json={"contract": {}})
    account, old = join(adapter, invite["token"], helpdesk)
    eventually(lambda: partner_kid(acme, account) is not None, what="the link at the upstream")
    rotate = f"/api/v1/webhook-participants/{account}/secret/rotate"

    # Refused: bad overlaps and unknown participants change nothing.
    for body, code in (({"overlap_seconds": -1}, 422), ({"overlap_seconds": 8 * 86_400}, 422)):
        response = adapter.client.post(rotate, json=body)
        assert response.status_code == code, response.text
    missing = adapter.client.post("/api/v1/webhook-participants/nobody-1234/secret/rotate")
    assert missing.status_code == 404, missing.text

    rolled = adapter.call("POST", rotate, json={"overlap_seconds": 3600})
    new = str(rolled["secret"])
    assert new != old and rolled["previous_secret_valid_until"] is not None
    listed = adapter.call("GET", "/api/v1/webhook-participants")["items"][0]
    assert "secret" not in listed and listed["previous_secret_valid_until"]

    # During the overlap the webhooks carry both signatures (new first) and either is accepted.
    number = offer_and_accept(acme, adapter, helpdesk, account, old)
    headers, body = helpdesk.received()[-1]
    stamp = int(headers["x-tix-signature"].split(",")[0][2:])
    assert signatures(headers["x-tix-signature"]) == [
        signing.digest(new.encode(), stamp, body),
        signing.digest(old.encode(), stamp, body),
    ]
    eventually(
        lambda: acme.ticket(number)["delegations"][0]["state"] == "accepted",
        what="an accept signed with the old secret inside the overlap",
    )
    second = offer_and_accept(acme, adapter, helpdesk, account, new)
    eventually(
        lambda: acme.ticket(second)["delegations"][0]["state"] == "accepted",
        what="an accept signed with the new secret",
    )

    # The operator rolls again from the CLI with no overlap: the last two secrets are refused.
    done = operator(adapter, "secret", "rotate", "--account", account, "--overlap-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    newest = done.stdout.strip()
    assert newest and newest not in (old, new) and "old secret revoked" in done.stderr
    ticket = acme.call("POST", "/api/v1/tickets", json={"title": "Door sensor"})["number"]
    acme.call("POST", f"/api/v1/tickets/{ticket}/delegations", json={"partner": account})
    eventually(lambda: helpdesk.events().count("offer") == 3, what="the third offer")
    headers, body = helpdesk.received()[-1]
    assert len(signatures(headers["x-tix-signature"])) == 1
    assert signing.verify(newest.encode(), headers["x-tix-signature"], body, now=int(time.time()))
    ticket_id = json.loads(body)["ticket"]["external_id"]
    inbound = f"/webhooks/{account}/inbound"
    for secret in (old, new):
        raw, hdrs = signed(secret, {"action": "accept", "ticket_id": ticket_id})
        response = adapter.client.post(inbound, content=raw, headers=hdrs)
        assert response.status_code == 401, response.text
        assert response.json()["detail"] == "signature does not match"
    assert acme.ticket(ticket)["delegations"][0]["state"] == "offered"
    raw, hdrs = signed(newest, {"action": "accept", "ticket_id": ticket_id})
    assert adapter.client.post(inbound, content=raw, headers=hdrs).status_code == 200
    eventually(
        lambda: acme.ticket(ticket)["delegations"][0]["state"] == "accepted",
        what="an accept signed with the newest secret",
    )

    unknown = operator(adapter, "secret", "rotate", "--account", "nobody-1234")
    assert unknown.returncode == 1 and "not a webhook participant" in unknown.stderr
