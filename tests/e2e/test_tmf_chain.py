"""A TMF621 client follows its ticket down a chain of node processes over RabbitMQ.

The client (plain httpx with an API key of an integration user at the vendor's node) opens a
trouble ticket, subscribes a listener (a real HTTP server on loopback), and the ticket is
delegated down three levels and resolved at the leaf. The listener receives the status changes
rolled up from the chain and the resolved event, even though it was down while the leaf
resolved; the ticket shows the chain's provenance in ``externalIdentifier`` and the disclosed
companies in ``relatedParty``. Every event validates against the v5.0.1 specification.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.support.nodes import NodeFactory, NodeProcess, eventually, link, offered_ref
from tests.support.tmf import listener, schema_errors

API = "/tmf-api/troubleTicket/v5"
FAST_EVENTS = {
    "TIX_TMF_POLL_SECONDS": "0.1",
    "TIX_TMF_RETRY_INITIAL_SECONDS": "0.1",
    "TIX_TMF_RETRY_MAX_SECONDS": "0.5",
}


def started(nodes: NodeFactory, name: str, label: str) -> NodeProcess:
    node = nodes(name, label=label, start=False)
    node.start(FAST_EVENTS)
    return node


def delegate_and_accept(up: NodeProcess, down: NodeProcess, number: str) -> str:
    up.call("POST", f"/api/v1/tickets/{number}/delegations", json={"partner": down.account_id})
    offer = eventually(lambda: offered_ref(down, number), what=f"offer at {down.account_id}")
    down.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
    return str(offer["number"])


def test_a_tmf_client_follows_its_ticket_down_the_chain(nodes: NodeFactory) -> None:
    acme = started(nodes, "acme", "ACME Vendor")
    northwind = started(nodes, "northwind", "Northwind Services")
    southpole = started(nodes, "southpole", "Southpole Field Ops")
    sla = {"targets": {"critical": {"response_minutes": 30, "resolution_minutes": 240}}}
    link(acme, northwind, {"disclose_subcontractors": "named", "sla": sla})
    link(northwind, southpole, {"disclose_subcontractors": "named"})

    acme.call(
        "POST",
        "/api/v1/users",
        json={"username": "opco-crm", "password": "crm-password-1", "role": "dispatcher"},
    )
    token = acme.client.post(
        "/api/v1/auth/token", data={"username": "opco-crm", "password": "crm-password-1"}
    ).json()["access_token"]
    key = acme.client.post(
        "/api/v1/users/me/api-keys",
        json={"name": "tmf621"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["key"]

    with (
        listener() as events,
        httpx.Client(
            base_url=f"http://127.0.0.1:{acme.port}{API}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=15,
        ) as tmf,
    ):
        hub = tmf.post("/hub", json={"@type": "Hub", "callback": events.url})
        assert hub.status_code == 201, hub.text
        created = tmf.post(
            "/troubleTicket",
            json={
                "@type": "TroubleTicket",
                "name": "No signal at site 17",
                "description": "Base station down since 06:00",
                "severity": "Critical",
                "ticketType": "network",
                "externalIdentifier": [{"owner": "OpCo CRM", "id": "INC-4711"}],
                "relatedParty": [
                    {"role": "customer", "partyOrPartyRole": {"id": "opco", "name": "OpCo"}}
                ],
            },
        )
        assert created.status_code == 201, created.text
        number = created.json()["id"]
        eventually(lambda: "TroubleTicketCreateEvent" in events.types(), what="create event")

        level1 = delegate_and_accept(acme, northwind, number)
        level2 = delegate_and_accept(northwind, southpole, level1)
        eventually(
            lambda: tmf.get(f"/troubleTicket/{number}").json()["status"] == "inProgress",
            what="inProgress at the GC",
        )
        eventually(
            lambda: any(
                e["eventType"] == "TroubleTicketStatusChangeEvent"
                and e["event"]["troubleTicket"]["status"] == "inProgress"
                for e in events.events
            ),
            what="the inProgress status change event",
        )

        # The listener is down while the leaf resolves; the events wait for it.
        events.set_down(True)
        southpole.call("POST", f"/api/v1/tickets/{level2}/status", json={"status": "in_progress"})
        southpole.call(
            "POST",
            f"/api/v1/tickets/{level2}/status",
            json={"status": "resolved", "note": "antenna cable replaced"},
        )
        eventually(
            lambda: northwind.ticket(level1)["delegations"][0]["state"] == "resolved",
            what="the resolution at level 1",
        )
        northwind.call(
            "POST",
            f"/api/v1/tickets/{level1}/status",
            json={"status": "resolved", "note": "fixed by our field partner"},
        )
        eventually(
            lambda: tmf.get(f"/troubleTicket/{number}").json()["status"] == "resolved",
            what="resolved at the GC",
        )
        eventually(lambda: events.refused > 0, what="a delivery refused while down")
        events.set_down(False)
        eventually(
            lambda: "TroubleTicketResolvedEvent" in events.types(),
            timeout=60,
            what="the resolved event",
        )

        received = events.events
        for event in received:
            assert schema_errors(event["eventType"], event) == [], event
            assert event["event"]["troubleTicket"]["id"] == number
        changes = [
            e["event"]["troubleTicket"]["status"]
            for e in received
            if e["eventType"] == "TroubleTicketStatusChangeEvent"
        ]
        assert changes[0] == "inProgress" and changes[-1] == "resolved"
        resolved = next(e for e in received if e["eventType"] == "TroubleTicketResolvedEvent")
        ticket: dict[str, Any] = resolved["event"]["troubleTicket"]
        assert ticket["status"] == "resolved"

        # Provenance, most recent hand-off first; the disclosed companies of the chain.
        ticket = tmf.get(f"/troubleTicket/{number}").json()
        assert schema_errors("TroubleTicket_RES", ticket) == []
        ids = [
            (e.get("owner"), e.get("externalIdentifierType")) for e in ticket["externalIdentifier"]
        ]
        assert ids == [
            (southpole.account_id, "TixDelegation"),
            (northwind.account_id, "TixTicket"),
            ("OpCo CRM", None),
            ("tix", "TixChain"),
        ]
        assert ticket["externalIdentifier"][1]["id"] == level1
        parties = {(p["role"], p["partyOrPartyRole"]["name"]) for p in ticket["relatedParty"]}
        assert parties == {
            ("serviceProvider", "ACME Vendor"),
            ("customer", "OpCo"),
            ("subcontractor level 1", "Northwind Services"),
            ("subcontractor level 2", "Southpole Field Ops"),
        }
        # The contract's SLA below is the TMF client's expected resolution (24/7: offer + 4 h).
        expected = datetime.fromisoformat(ticket["expectedResolutionDate"])
        opened = datetime.fromisoformat(ticket["creationDate"])
        assert timedelta(hours=4) <= expected - opened < timedelta(hours=4, minutes=5)
        assert ticket["troubleTicketCharacteristic"][0]["name"] == "slaState"
        assert tmf.delete(f"/hub/{hub.json()['id']}").status_code == 204
    assert all(node.rejected() == [] for node in (acme, northwind, southpole))
