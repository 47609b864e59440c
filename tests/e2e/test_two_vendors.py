"""One partner working for two vendors, with a hidden subcontractor below it.

acme ─(hidden)→ northwind ─(named)→ southpole,  and  globex ─(named)→ northwind.
Checks what each company can learn: acme never learns that southpole exists (not its id, name,
people or ticket numbers, in API responses or in its database), and globex learns nothing of
acme's tickets. Also: updates cascade down, comments travel up under the hiding company's name,
requester contacts stay masked, a rating travels down to whoever did the work.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.nodes import NodeFactory, NodeProcess, eventually, link, offered_ref


def accept_offer(down: NodeProcess, upstream_ref: str) -> str:
    offer = eventually(lambda: offered_ref(down, upstream_ref), what=f"offer at {down.account_id}")
    down.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
    return str(offer["number"])


def db_bytes(tmp_path: Path, node: NodeProcess) -> bytes:
    """The node's database as bytes to search (SQLite files, or PostgreSQL tables copied out)."""
    return node.database_bytes()


def test_a_hidden_subcontractor_and_a_second_vendor_learn_nothing_they_should_not(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    globex = nodes("globex", label="Globex Corp")
    northwind = nodes("northwind", label="Northwind Services")
    southpole = nodes("southpole", label="Southpole Field Ops")
    link(acme, northwind, {"disclose_subcontractors": "hidden"})
    link(globex, northwind, {"disclose_subcontractors": "named"})
    link(northwind, southpole, {"disclose_subcontractors": "named"})
    southpole.call(
        "POST",
        "/api/v1/users",
        json={
            "username": "bob",
            "password": "bob-password-1",
            "full_name": "Bob Fieldman",
            "role": "engineer",
        },
    )

    t1 = acme.call(
        "POST",
        "/api/v1/tickets",
        json={
            "title": "Acme secret vault door",
            "requester": {"name": "Alice Client", "email": "alice@client.example"},
        },
    )["number"]
    acme.call("POST", f"/api/v1/tickets/{t1}/delegations", json={"partner": northwind.account_id})
    n1 = accept_offer(northwind, t1)
    northwind.call(
        "POST", f"/api/v1/tickets/{n1}/delegations", json={"partner": southpole.account_id}
    )
    s1 = accept_offer(southpole, n1)
    assert northwind.ticket(n1)["requester"] is None
    assert southpole.ticket(s1)["requester"] is None

    t2 = globex.call("POST", "/api/v1/tickets", json={"title": "Globex lobby light"})["number"]
    globex.call("POST", f"/api/v1/tickets/{t2}/delegations", json={"partner": northwind.account_id})
    n2 = accept_offer(northwind, t2)

    # Updates cascade down the whole chain.
    acme.call(
        "PATCH",
        f"/api/v1/tickets/{t1}",
        json={"priority": "critical", "addendum": "Access code at the front desk"},
    )
    for node, number in ((northwind, n1), (southpole, s1)):
        eventually(
            lambda n=node, x=number: n.ticket(x)["priority"] == "critical",
            what=f"update at {node.account_id}",
        )
        assert "Access code at the front desk" in node.ticket(number)["description"]

    # Bob at southpole comments; acme sees it under northwind's name (hidden below).
    bob = southpole.client.post(
        "/api/v1/auth/token", data={"username": "bob", "password": "bob-password-1"}
    ).json()["access_token"]
    posted = southpole.client.post(
        f"/api/v1/tickets/{s1}/comments",
        json={"body": "Bob on site, drilling the lock", "visibility": "public"},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert posted.status_code == 201, posted.text
    southpole.call(
        "POST",
        f"/api/v1/tickets/{s1}/comments",
        json={"body": "southpole internal only", "visibility": "internal"},
    )
    acme_comments = eventually(
        lambda: acme.call("GET", f"/api/v1/tickets/{t1}/comments")["items"],
        what="comment at acme",
    )
    assert [(c["body"], c["author"]) for c in acme_comments] == [
        ("Bob on site, drilling the lock", "Northwind Services")
    ]
    at_northwind = northwind.call("GET", f"/api/v1/tickets/{n1}/comments")["items"]
    assert [c["author"] for c in at_northwind] == ["Bob Fieldman (Southpole Field Ops)"]

    # Work finishes at the bottom; acme confirms and rates; the rating reaches southpole.
    southpole.call("POST", f"/api/v1/tickets/{s1}/status", json={"status": "in_progress"})
    southpole.call("POST", f"/api/v1/tickets/{s1}/status", json={"status": "resolved"})
    eventually(
        lambda: northwind.ticket(n1)["delegations"][0]["state"] == "resolved", what="resolved"
    )
    northwind.call("POST", f"/api/v1/tickets/{n1}/status", json={"status": "resolved"})
    eventually(lambda: acme.ticket(t1)["delegations"][0]["state"] == "resolved", what="at acme")
    chain = acme.call("GET", f"/api/v1/tickets/{t1}/chain")
    assert [d["partner"] for d in chain["delegations"]] == [northwind.account_id]
    assert chain["delegations"][0]["delegations"] == [], "hidden: nothing below northwind"
    top = acme.ticket(t1)["delegations"][0]["id"]
    acme.call("POST", f"/api/v1/delegations/{top}/confirm")
    eventually(lambda: southpole.ticket(s1)["status"] == "closed", what="closed at the leaf")
    acme.call("POST", f"/api/v1/tickets/{t1}/status", json={"status": "resolved"})
    acme.call("POST", f"/api/v1/tickets/{t1}/rating", json={"score": 5, "comment": "fast"})
    eventually(
        lambda: (southpole.ticket(s1)["rating"] or {}).get("score") == 5, what="rating at leaf"
    )
    assert northwind.ticket(n1)["rating"] == {"score": 5, "comment": "fast"}

    # What acme can see holds no trace of southpole.
    seen = json.dumps(
        [
            acme.call("GET", f"/api/v1/tickets/{t1}"),
            acme.call("GET", f"/api/v1/tickets/{t1}/chain"),
            acme.call("GET", f"/api/v1/tickets/{t1}/timeline"),
            acme.call("GET", f"/api/v1/tickets/{t1}/comments"),
            acme.tickets(),
        ]
    )
    stored = db_bytes(tmp_path, acme)
    assert northwind.account_id.encode() in stored and t1.encode() in stored  # it reads the rows
    for secret in (southpole.account_id, "Southpole", "Bob Fieldman", s1, "internal only"):
        assert secret not in seen, secret
        assert secret.encode() not in stored, secret

    # globex sees its own ticket only, and nothing of acme's.
    assert [t["number"] for t in globex.tickets()] == [t2]
    assert globex.call("GET", f"/api/v1/tickets/{t2}/comments")["items"] == []
    globex_seen = json.dumps([globex.tickets(), globex.call("GET", f"/api/v1/tickets/{t2}/chain")])
    globex_stored = db_bytes(tmp_path, globex)
    assert t2.encode() in globex_stored
    for secret in (acme.account_id, "Acme secret", t1, n1, "Alice Client", southpole.account_id):
        assert secret not in globex_seen, secret
        assert secret.encode() not in globex_stored, secret
    assert globex.call("GET", f"/api/v1/tickets/{t1}", expect=404)
    # northwind keeps the two vendors' tickets apart.
    assert northwind.ticket(n2)["upstream"]["account"] == globex.account_id
    assert all(node.rejected() == [] for node in (acme, globex, northwind, southpole))
