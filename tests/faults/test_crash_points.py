"""A node SIGKILLed at a named crash point: after restart its message is applied exactly once."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.nodes import NodeFactory, eventually, link, offered_ref

pytestmark = pytest.mark.needs_rabbitmq

FAULT_ENV = {"TIX_FAULT_INJECTION": "1"}


@pytest.mark.parametrize(
    ("point", "expect_duplicate"),
    [("after_commit_before_publish", False), ("after_confirm_before_mark_sent", True)],
)
def test_upstream_killed_around_its_publish_delivers_the_offer_once(
    nodes: NodeFactory, point: str, expect_duplicate: bool
) -> None:
    acme = nodes("acme")
    northwind = nodes("northwind")
    link(acme, northwind)
    acme.stop()
    acme.start(FAULT_ENV | {"FI_CRASH_AT": point})

    number = acme.call("POST", "/api/v1/tickets", json={"title": "Boiler leak"})["number"]
    try:
        acme.client.post(
            f"/api/v1/tickets/{number}/delegations", json={"partner": northwind.account_id}
        )
    except httpx.HTTPError:
        pass  # the process may die before it answers; the commit is what counts
    assert acme.wait_exit(timeout=30) == -9, "the crash point did not fire"

    if not expect_duplicate:
        time.sleep(1.0)
        assert offered_ref(northwind, number) is None, "published although killed before"

    acme.start()
    assert len(acme.ticket(number)["delegations"]) == 1, "the committed delegation was lost"
    eventually(lambda: offered_ref(northwind, number), what="the offer after restart")
    eventually(
        lambda: acme.call("GET", "/api/v1/admin/outbox")["counts"].get("pending", 0) == 0,
        what="outbox drained",
    )
    time.sleep(0.5)
    assert [t["upstream"]["ref"] for t in northwind.tickets()] == [number]
    duplicates = northwind.metric('tix_messages_in_total{outcome="duplicate"}')
    assert (duplicates >= 1) is expect_duplicate


@pytest.mark.parametrize(
    ("point", "committed"),
    [("consumer_after_commit_before_ack", True), ("consumer_before_commit", False)],
)
def test_downstream_killed_while_applying_applies_the_redelivery_once(
    nodes: NodeFactory, point: str, committed: bool
) -> None:
    acme = nodes("acme")
    northwind = nodes("northwind")
    link(acme, northwind)
    northwind.stop()
    northwind.start(FAULT_ENV | {"FI_CRASH_AT": point})

    number = acme.call("POST", "/api/v1/tickets", json={"title": "Door sensor"})["number"]
    acme.call(
        "POST", f"/api/v1/tickets/{number}/delegations", json={"partner": northwind.account_id}
    )
    assert northwind.wait_exit(timeout=30) == -9, "the crash point did not fire"

    northwind.start()
    eventually(lambda: offered_ref(northwind, number), what="the offer after restart")
    if committed:  # the effect was committed before the kill: the redelivery is a duplicate
        eventually(
            lambda: northwind.metric('tix_messages_in_total{outcome="duplicate"}') >= 1,
            what="redelivery deduplicated",
        )
    else:  # nothing was committed: the redelivery is the first application
        assert northwind.metric('tix_messages_in_total{outcome="duplicate"}') == 0
    assert [t["upstream"]["ref"] for t in northwind.tickets()] == [number]
    assert northwind.rejected() == []
