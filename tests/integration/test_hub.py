"""The hub end to end: ``tix exchange serve`` and two ``tix node serve`` processes on the
machine's RabbitMQ, in a run-unique vhost (the tap binds ``#`` on ``tix.exchange``, which must
not capture other tests' traffic).

Two nodes register, A finds B in the directory and invites it through the hub, B accepts from
its incoming list, declines a second invitation with a reason from the CLI (A's poller learns
it: ``tix hub sent``), a delegation flows, the audit tap counts it (metadata only), and a
planted dead letter is listed and replayed by the operator. The hub's database and the nodes'
are on ``db_backend`` (SQLite files, then PostgreSQL databases).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.db import node_database_url
from tests.support.nodes import TIX, NodeProcess, eventually, offered_ref, run_id
from tests.support.private_broker import free_port, skip_or_fail

OPERATOR = "operator-token-for-tests"


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    """A fresh vhost on the machine's broker (rabbitmqctl), removed afterwards."""
    if shutil.which("rabbitmqctl") is None:
        skip_or_fail("rabbitmqctl is not installed; the hub test needs a vhost of its own")
    vhost = f"tix-hub-{run_id()}"
    try:
        _ctl("add_vhost", vhost)
        _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (subprocess.SubprocessError, OSError) as exc:
        skip_or_fail(f"cannot create a vhost on the machine's RabbitMQ: {exc!r}")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)


class Hub:
    def __init__(self, workdir: Path, amqp_url: str, database_url: str = "") -> None:
        self.port = free_port()
        self.log_path = workdir / "hub.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIX_")}
        env.update(
            TIX_HUB_DATABASE_URL=database_url or f"sqlite:///{workdir / 'hub.db'}",
            TIX_HUB_AMQP_URL=amqp_url,
            TIX_HUB_OPERATOR_TOKEN=OPERATOR,
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [TIX, "exchange", "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(
            base_url=self.url, timeout=15.0, headers={"Authorization": f"Bearer {OPERATOR}"}
        )

    def health(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"hub exited: {self.log_path.read_text()[-3000:]}")
        try:
            response = self.client.get("/healthz")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _traffic(hub: Hub, account: str) -> dict[str, Any]:
    for item in hub.get("/hub/v1/audit/accounts")["items"]:
        if item["account"] == account:
            return dict(item)
    return {"sent": 0, "received": 0, "failed": 0}


def test_two_nodes_link_through_the_hub_and_the_hub_audits_and_replays(
    vhost_url: str, tmp_path: Path, db_backend: str
) -> None:
    with ExitStack() as databases:
        _through_the_hub(vhost_url, tmp_path, db_backend, databases)


def _through_the_hub(vhost_url: str, tmp_path: Path, backend: str, dbs: ExitStack) -> None:
    hub_db = node_database_url(backend, dbs, tables=False)  # "": a SQLite file
    hub = Hub(tmp_path, vhost_url, hub_db)
    run = run_id()
    nodes: list[NodeProcess] = []
    try:
        eventually(lambda: (hub.health() or {}).get("audit_tap") == "up", what="the hub's tap")
        for name, label in (("a", "Acme Lifts"), ("b", f"Bravo Service {run}")):
            node = NodeProcess(
                f"hub{name}-{run}",
                tmp_path,
                amqp_url=vhost_url,
                label=label,
                database_url=node_database_url(backend, dbs),
            )
            node.init()
            node.start({"TIX_HUB_URL": hub.url})
            nodes.append(node)
        acme, bravo = nodes
        for node in nodes:
            entry = node.call("POST", "/api/v1/hub/register", json={"transport": "amqp"})
            assert entry["account_id"] == node.account_id

        # A finds B by name and invites it through the hub.
        found = acme.call("GET", "/api/v1/hub/directory", params={"q": f"bravo service {run}"})
        assert [item["account_id"] for item in found["items"]] == [bravo.account_id]
        sent = acme.call(
            "POST",
            "/api/v1/hub/invitations",
            json={"to": bravo.account_id, "note": "work for us", "contract": {}},
        )
        # B sees it in its incoming list (and A does not) and accepts it in one call.
        assert acme.call("GET", "/api/v1/links/incoming")["items"] == []
        incoming = bravo.call("GET", "/api/v1/links/incoming")["items"]
        assert len(incoming) == 1
        item = incoming[0]
        assert item["from"] == acme.account_id and item["from_label"] == "Acme Lifts"
        assert item["valid"] is True and item["link_id"] == sent["link_id"]
        assert "token" not in item
        # The CLI shows the same inbox (tix link inbox --json).
        listed = subprocess.run(
            [TIX, "link", "inbox", "--json"],
            env=bravo.env({"TIX_HUB_URL": hub.url}),
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert [i["id"] for i in json.loads(listed.stdout)] == [item["id"]]
        link = bravo.call("POST", f"/api/v1/links/incoming/{item['id']}/accept")
        assert link["partner"] == acme.account_id and link["direction"] == "upstream"
        assert bravo.call("GET", "/api/v1/links/incoming")["items"] == []
        bravo.call("POST", f"/api/v1/links/incoming/{item['id']}/accept", expect=404)
        # A second invitation is declined from the CLI with a reason: the hub drops it,
        # nothing is linked, and acme's node learns the answer (its poller, or here the CLI).
        acme.call("POST", "/api/v1/hub/invitations", json={"to": bravo.account_id})
        [second] = bravo.call("GET", "/api/v1/links/incoming")["items"]
        declined = subprocess.run(
            [TIX, "link", "decline-incoming", second["id"], "--reason", "no lifts here"],
            env=bravo.env({"TIX_HUB_URL": hub.url}),
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert acme.account_id in declined.stdout.decode()
        assert bravo.call("GET", "/api/v1/links/incoming")["items"] == []
        assert len(bravo.call("GET", "/api/v1/links")["items"]) == 1
        sent_out = subprocess.run(
            [TIX, "hub", "sent", "--json"],
            env=acme.env({"TIX_HUB_URL": hub.url}),
            capture_output=True,
            timeout=60,
            check=True,
        )
        answers = json.loads(sent_out.stdout)
        assert answers["synced"] is True
        assert [(i["to"], i["state"], i["reason"]) for i in answers["items"]] == [
            (bravo.account_id, "declined", "no lifts here"),
            (bravo.account_id, "accepted", ""),
        ]
        plain_list = subprocess.run(
            [TIX, "hub", "sent"],
            env=acme.env({"TIX_HUB_URL": hub.url}),
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert b"declined\t" in plain_list.stdout and b"no lifts here" in plain_list.stdout
        assert acme.call("GET", "/api/v1/hub/invitations")["items"][0]["state"] == "declined"

        def linked() -> bool:
            links = acme.call("GET", "/api/v1/links")["items"]
            return any(x["partner"] == bravo.account_id for x in links)

        eventually(linked, what="the link at acme")

        # A delegation flows down and its acceptance comes back up.
        number = acme.call("POST", "/api/v1/tickets", json={"title": "Lift stuck"})["number"]
        acme.call(
            "POST", f"/api/v1/tickets/{number}/delegations", json={"partner": bravo.account_id}
        )
        offer = eventually(lambda: offered_ref(bravo, number), what="the offer at bravo")
        bravo.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
        eventually(
            lambda: acme.ticket(number)["delegations"][0]["state"] == "accepted",
            what="the acceptance at acme",
        )

        # The tap counted both directions: link.accept and the acceptance up, the offer down.
        eventually(
            lambda: (
                _traffic(hub, acme.account_id)["sent"] >= 1
                and _traffic(hub, bravo.account_id)["sent"] >= 2
            ),
            what="the audit counts",
        )
        events = hub.get("/hub/v1/audit/events", account=acme.account_id, limit=100)["items"]
        offers = [e for e in events if e["type"] == "delegation.offer"]
        assert offers and offers[0]["from"] == acme.account_id
        assert offers[0]["to"] == bravo.account_id and offers[0]["size"] > 0
        assert all(set(e) >= {"id", "seq", "sent_at", "received_at"} for e in events)
        assert not any("body" in e for e in events)

        # A planted dead letter: not an envelope, so bravo's node dead-letters it.
        from exchange.amqp import AmqpTransport

        async def plant() -> None:
            transport = AmqpTransport(vhost_url)
            await transport.connect()
            try:
                await transport.publish(
                    to=bravo.account_id, body=b"not an envelope", message_id=f"planted-{run}"
                )
            finally:
                await transport.close()

        asyncio.run(plant())

        def planted() -> list[dict[str, Any]]:
            listed = hub.get("/hub/v1/dead-letters", account=bravo.account_id)["items"]
            return [i for i in listed[0]["items"] if i["id"] == f"planted-{run}"]

        letter = eventually(planted, what="the planted dead letter at the hub")[0]
        assert letter["reason"] and letter["type"] == "(not an envelope)"
        all_accounts = {i["account"] for i in hub.get("/hub/v1/dead-letters")["items"]}
        assert {acme.account_id, bravo.account_id} <= all_accounts
        eventually(lambda: _traffic(hub, bravo.account_id)["failed"] >= 1, what="failed count")

        replayed = hub.client.post(
            "/hub/v1/dead-letters/replay", params={"account": bravo.account_id}
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["replayed"] == {bravo.account_id: 1}
        # Replayed into the inbox, refused again, back in the dead-letter queue: counted twice.
        eventually(lambda: _traffic(hub, bravo.account_id)["failed"] >= 2, what="second death")

        # tix keys rotate moves the hub's entry too (signed with the old key, which it pins);
        # then a plain registration, signed with the new key, is accepted.
        env = acme.env({"TIX_HUB_URL": hub.url, "COLUMNS": "300"})
        old_kid = acme.call("POST", "/api/v1/hub/register")["kid"]
        rotated = subprocess.run(
            [TIX, "keys", "rotate"], env=env, check=True, capture_output=True, timeout=60
        )
        listed_kids = hub.get("/hub/v1/directory", q=acme.account_id)["items"]
        assert len(listed_kids) == 1 and listed_kids[0]["kid"] != old_kid
        assert f"now has kid {listed_kids[0]['kid']}".encode() in rotated.stdout
        subprocess.run(
            [TIX, "hub", "register"], env=env, check=True, capture_output=True, timeout=60
        )

        # Operator endpoints refuse anyone else.
        anonymous = httpx.get(f"{hub.url}/hub/v1/audit/accounts", timeout=10)
        assert anonymous.status_code == 401 and "detail" in anonymous.json()
    finally:
        for node in nodes:
            node.close()
        hub.close()
