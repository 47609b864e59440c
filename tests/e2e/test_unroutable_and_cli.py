"""Delivery to a partner with no inbox on the broker, and the operator's CLI commands."""

from __future__ import annotations

import json
import stat
import subprocess
import uuid
from pathlib import Path

from tests.support.nodes import (
    TIX,
    NodeFactory,
    NodeProcess,
    delete_queues,
    eventually,
    link,
    offered_ref,
)


def tix(node: NodeProcess, *args: str) -> str:
    result = subprocess.run(
        [TIX, *args], env=node.env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_an_unroutable_offer_is_reported_to_the_sender_and_delivered_once_the_inbox_exists(
    nodes: NodeFactory, amqp_url: str
) -> None:
    acme = nodes("acme")
    northwind = nodes("northwind")
    link(acme, northwind)
    northwind.stop()
    delete_queues(amqp_url, [northwind.account_id])  # as if the partner's inbox were gone

    number = acme.call("POST", "/api/v1/tickets", json={"title": "Fridge warm"})["number"]
    acme.call(
        "POST", f"/api/v1/tickets/{number}/delegations", json={"partner": northwind.account_id}
    )

    def reported() -> dict[str, object] | None:
        d = acme.ticket(number)["delegations"][0]
        return d if d["delivery"]["last_error"] == "unroutable" else None

    delegation = eventually(reported, what="unroutable reported on the delegation")
    assert delegation["delivery"]["pending"] == 1
    rows = acme.call("GET", "/api/v1/admin/outbox", params={"state": "pending"})["items"]
    assert [(r["type"], r["last_error"]) for r in rows] == [("delegation.offer", "unroutable")]

    northwind.start()  # declares its inbox again
    eventually(lambda: offered_ref(northwind, number), timeout=30, what="offer after the inbox")
    eventually(
        lambda: acme.ticket(number)["delegations"][0]["delivery"]["pending"] == 0,
        what="outbox drained",
    )
    assert [t["upstream"]["ref"] for t in northwind.tickets()] == [number]


def test_operators_link_nodes_and_read_rejections_with_the_cli(
    nodes: NodeFactory, amqp_url: str, tmp_path: Path
) -> None:
    acme = nodes("acme")
    northwind = nodes("northwind")

    token = tix(acme, "link", "invite", "--days", "2", "--disclose", "anonymous").strip()
    assert token.count(".") == 2
    out = tix(northwind, "link", "accept", token)
    assert f"linked to {acme.account_id}" in out
    eventually(lambda: acme.call("GET", "/api/v1/links")["items"], what="link at acme via CLI")
    contract = acme.call("GET", "/api/v1/links")["items"][0]["contract"]
    assert contract["disclose_subcontractors"] == "anonymous"

    again = subprocess.run(
        [TIX, "link", "accept", token], env=northwind.env(), capture_output=True, text=True
    )
    assert again.returncode == 1 and "already" in again.stdout

    from tests.e2e.test_hostile_wire import publish

    publish(amqp_url, acme.account_id, b'{"v": 1, "id": "' + str(uuid.uuid4()).encode() + b'"')
    eventually(lambda: acme.rejected(), what="a rejection")
    listed = json.loads(tix(acme, "dlq", "list", "--json"))
    assert [r["reason"] for r in listed] == ["malformed"]
    assert "malformed" in tix(acme, "dlq", "list")

    replayed = tix(acme, "dlq", "replay")
    assert "replayed 1 message" in replayed
    eventually(lambda: len(acme.rejected()) == 2, what="the replayed message rejected again")

    assert "0 failed row(s) back to pending" in tix(acme, "outbox", "retry")
    assert "link.accept" in tix(northwind, "outbox", "list", "--state", "sent")

    key = tmp_path / "spare.key"
    out = tix(acme, "keys", "generate", "--out", str(key))
    assert "created" in out and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "exists" in tix(acme, "keys", "generate", "--out", str(key))
