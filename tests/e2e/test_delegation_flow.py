"""One-level delegation between two node processes over the machine's RabbitMQ (each test
with node processes runs on SQLite and PostgreSQL: the ``nodes`` fixture)."""

from __future__ import annotations

from tests.support.nodes import NodeFactory, eventually, link, offered_ref


def test_invite_accept_delegate_work_and_resolve_is_seen_by_the_upstream(
    nodes: NodeFactory,
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    northwind = nodes("northwind", label="Northwind Services")
    link(acme, northwind, {"disclose_subcontractors": "named"})

    links = northwind.call("GET", "/api/v1/links")["items"]
    assert [(x["partner"], x["direction"], x["state"]) for x in links] == [
        (acme.account_id, "upstream", "active")
    ]

    ticket = acme.call(
        "POST",
        "/api/v1/tickets",
        json={
            "title": "ATM 0417 out of service",
            "priority": "high",
            "service_object": {"site": "Branch 12", "equipment": "ATM 0417"},
            "requester": {"name": "Branch manager", "email": "b12@client.example"},
        },
    )
    number = ticket["number"]
    delegation = acme.call(
        "POST",
        f"/api/v1/tickets/{number}/delegations",
        json={"partner": northwind.account_id, "note": "please send an engineer"},
    )
    assert delegation["state"] == "offered"

    offer = eventually(lambda: offered_ref(northwind, number), what="the offer at northwind")
    assert offer["status"] == "offered"
    assert offer["title"] == "ATM 0417 out of service"
    assert offer["upstream"] == {
        "account": acme.account_id,
        "delegation_id": delegation["id"],
        "ref": number,
    }
    assert offer["requester"] is None, "contacts are masked unless the contract shares them"
    theirs = offer["number"]

    northwind.call("POST", f"/api/v1/tickets/{theirs}/accept")
    eventually(
        lambda: (
            acme.ticket(number)["delegations"][0]["state"] == "accepted"
            or acme.ticket(number)["delegations"][0]["state"] == "in_progress"
        ),
        what="acceptance at acme",
    )
    northwind.call("POST", f"/api/v1/tickets/{theirs}/status", json={"status": "in_progress"})
    eventually(
        lambda: acme.ticket(number)["delegations"][0]["status"] == "in_progress",
        what="in_progress at acme",
    )
    northwind.call(
        "POST",
        f"/api/v1/tickets/{theirs}/comments",
        json={"body": "Engineer on site", "visibility": "partner"},
    )
    northwind.call(
        "POST",
        f"/api/v1/tickets/{theirs}/status",
        json={"status": "resolved", "note": "Card reader replaced"},
    )

    def resolved_upstream() -> dict[str, object] | None:
        d = acme.ticket(number)["delegations"][0]
        return d if d["state"] == "resolved" else None

    seen = eventually(resolved_upstream, what="resolution at acme")
    assert seen["status"] == "resolved"
    assert seen["ref"] == theirs
    assert seen["resolution"] == "Card reader replaced"
    assert acme.ticket(number)["status"] == "in_progress"

    comments = acme.call("GET", f"/api/v1/tickets/{number}/comments")["items"]
    assert [(c["body"], c["source_account"]) for c in comments] == [
        ("Engineer on site", northwind.account_id)
    ]
    chain = acme.call("GET", f"/api/v1/tickets/{number}/chain")
    assert chain["delegations"][0]["partner"] == northwind.account_id
    assert chain["delegations"][0]["status"] == "resolved"
    assert chain["delegations"][0]["level"] == 1
    kinds = [e["kind"] for e in acme.call("GET", f"/api/v1/tickets/{number}/timeline")["items"]]
    assert kinds[:2] == ["created", "delegated"]
    assert "partner_accepted" in kinds and "partner_status" in kinds and "comment" in kinds

    # Declining is the other answer to an offer: the upstream sees it with the reason.
    second = acme.call("POST", "/api/v1/tickets", json={"title": "Printer jam"})["number"]
    acme.call(
        "POST", f"/api/v1/tickets/{second}/delegations", json={"partner": northwind.account_id}
    )
    offer2 = eventually(lambda: offered_ref(northwind, second), what="second offer")
    northwind.call(
        "POST", f"/api/v1/tickets/{offer2['number']}/decline", json={"reason": "no spares"}
    )
    eventually(
        lambda: acme.ticket(second)["delegations"][0]["state"] == "declined",
        what="decline at acme",
    )
    assert acme.ticket(second)["delegations"][0]["reason"] == "no spares"
    assert acme.rejected() == [] and northwind.rejected() == []
