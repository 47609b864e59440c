"""RabbitMQ stopped while tickets are being delegated, then started: nothing lost or doubled."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.support.nodes import NodeFactory, eventually, link
from tests.support.private_broker import PrivateBroker

pytestmark = pytest.mark.needs_rabbitmq

BEFORE, DURING, AFTER = 10, 10, 10


def test_every_ticket_delegated_across_a_broker_stop_arrives_exactly_once(
    private_broker: PrivateBroker, private_nodes: NodeFactory
) -> None:
    acme = private_nodes("acme")
    northwind = private_nodes("northwind")
    link(acme, northwind, {"auto_accept": True})

    numbers: list[str] = []

    def delegate_one(i: int) -> None:
        number = acme.call("POST", "/api/v1/tickets", json={"title": f"Ticket {i}"})["number"]
        acme.call(
            "POST",
            f"/api/v1/tickets/{number}/delegations",
            json={"partner": northwind.account_id},
        )
        numbers.append(number)

    for i in range(BEFORE):
        delegate_one(i)
    private_broker.stop_app()
    eventually(lambda: acme.client.get("/readyz").json()["broker"] == "down", what="acme sees down")
    stopped = time.monotonic()
    for i in range(BEFORE, BEFORE + DURING):
        delegate_one(i)  # every call must answer 2xx while the broker is away
    pending = acme.call("GET", "/api/v1/admin/outbox", params={"state": "pending"})
    assert pending["counts"].get("pending", 0) >= DURING
    private_broker.start_app()
    for i in range(BEFORE + DURING, BEFORE + DURING + AFTER):
        delegate_one(i)

    total = BEFORE + DURING + AFTER

    def all_arrived() -> bool:
        return len(northwind.tickets()) >= total

    eventually(all_arrived, timeout=90, what="every offer at northwind")
    refs = Counter(t["upstream"]["ref"] for t in northwind.tickets())
    assert sorted(refs) == sorted(numbers), "an offer was lost"
    assert max(refs.values()) == 1, "an offer arrived twice"

    def all_accepted() -> bool:
        states = [acme.ticket(n)["delegations"][0]["state"] for n in numbers]
        return all(s == "accepted" for s in states)

    eventually(all_accepted, timeout=90, what="every acceptance back at acme")
    recovered = time.monotonic() - stopped
    assert acme.rejected() == [] and northwind.rejected() == []
    outbox = acme.call("GET", "/api/v1/admin/outbox")["counts"]
    assert outbox == {"sent": total}
    print(f"broker stop/start: {total} tickets, recovered {recovered:.1f}s after the stop")
