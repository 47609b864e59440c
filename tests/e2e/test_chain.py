"""A four-level chain of node processes: roll-up with disclosure, rework and recall cascades."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from tests.support.nodes import NodeFactory, NodeProcess, eventually, link, offered_ref


def work_down(chain: list[NodeProcess], number: str) -> list[str]:
    """Delegate level by level and accept at each; return every level's ticket number."""
    numbers = [number]
    for up, down in itertools.pairwise(chain):
        up.call(
            "POST", f"/api/v1/tickets/{numbers[-1]}/delegations", json={"partner": down.account_id}
        )
        offer = eventually(lambda d=down, n=numbers[-1]: offered_ref(d, n), what="offer")
        down.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
        numbers.append(offer["number"])
    return numbers


def status(node: NodeProcess, number: str) -> str:
    return str(node.ticket(number)["status"])


def flat(delegations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for d in delegations:
        out.append(d)
        out.extend(flat(d["delegations"]))
    return out


def test_four_levels_roll_up_with_disclosure_then_rework_and_recall_cascade(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    acme = nodes("acme", label="ACME Vendor")
    northwind = nodes("northwind", label="Northwind Services")
    southpole = nodes("southpole", label="Southpole Field Ops")
    eastwood = nodes("eastwood", label="Eastwood Electric")
    chain = [acme, northwind, southpole, eastwood]
    link(acme, northwind, {"disclose_subcontractors": "named"})
    link(northwind, southpole, {"disclose_subcontractors": "anonymous"})
    link(southpole, eastwood, {"disclose_subcontractors": "named"})

    first = acme.call("POST", "/api/v1/tickets", json={"title": "Cooling failure"})["number"]
    numbers = work_down(chain, first)
    assert [eastwood.ticket(numbers[3])["depth"], southpole.ticket(numbers[2])["depth"]] == [3, 2]

    eastwood.call(
        "POST",
        "/api/v1/users",
        json={"username": "evelyn-qz", "password": "eve-password-1", "role": "engineer"},
    )
    eastwood.call("PATCH", f"/api/v1/tickets/{numbers[3]}", json={"assignee": "evelyn-qz"})
    eastwood.call("POST", f"/api/v1/tickets/{numbers[3]}/status", json={"status": "in_progress"})
    eastwood.call(
        "POST",
        f"/api/v1/tickets/{numbers[3]}/status",
        json={"status": "resolved", "note": "compressor replaced"},
    )
    for level in (2, 1):
        node, number = chain[level], numbers[level]
        eventually(
            lambda n=node, x=number: n.ticket(x)["delegations"][0]["state"] == "resolved",
            what=f"resolution at level {level}",
        )
        node.call("POST", f"/api/v1/tickets/{number}/status", json={"status": "resolved"})

    def gc_chain_resolved() -> dict[str, Any] | None:
        tree = acme.call("GET", f"/api/v1/tickets/{first}/chain")
        nodes_ = flat(tree["delegations"])
        done = len(nodes_) == 3 and all(d["status"] == "resolved" for d in nodes_)
        return tree if done else None

    tree = eventually(gc_chain_resolved, what="every level resolved at the GC")
    levels = [(d["level"], d["partner"], d["partner_label"]) for d in flat(tree["delegations"])]
    assert levels == [
        (1, northwind.account_id, "Northwind Services"),
        (2, southpole.account_id, "Southpole Field Ops"),
        (3, None, "subcontractor, level 3"),
    ]
    leaf = flat(tree["delegations"])[2]
    assert leaf["accepted_at"] and leaf["resolved_at"] and leaf["offered_at"]
    assert leaf["assignee_role"] == "engineer", "the role travels, never the person"
    assert "evelyn-qz" not in json.dumps(tree)

    # The GC's timeline holds its own events and those rolled up from every level, in order.
    events = acme.call("GET", f"/api/v1/tickets/{first}/timeline")["items"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    from_chain = {(e["level"], e["actor"]) for e in events if e["kind"] == "chain_status"}
    assert (2, "Southpole Field Ops") in from_chain
    assert (3, "subcontractor, level 3") in from_chain
    assert {e["level"] for e in events if e["kind"] == "partner_status"} == {1}

    # A comment from level 3 reaches the GC under the label its anonymity allows.
    eastwood.call(
        "POST",
        f"/api/v1/tickets/{numbers[3]}/comments",
        json={"body": "compressor was seized", "visibility": "partner"},
    )
    at_gc = eventually(
        lambda: acme.call("GET", f"/api/v1/tickets/{first}/comments")["items"],
        what="level-3 comment at the GC",
    )
    assert [(c["body"], c["author"]) for c in at_gc] == [
        ("compressor was seized", "subcontractor, level 3")
    ]

    # Nothing about the anonymous level reaches the GC: not its id, name or people.
    seen = json.dumps(
        [
            acme.call("GET", f"/api/v1/tickets/{first}/chain"),
            acme.call("GET", f"/api/v1/tickets/{first}/timeline"),
            acme.call("GET", f"/api/v1/tickets/{first}"),
            acme.call("GET", f"/api/v1/tickets/{first}/comments"),
        ]
    )
    for secret in (eastwood.account_id, "Eastwood", numbers[3]):
        assert secret not in seen
        assert secret.encode() not in acme.database_bytes(), f"{secret} in acme's database"

    # Rework from the GC reopens every level below that had resolved.
    top = acme.ticket(first)["delegations"][0]
    acme.call("POST", f"/api/v1/delegations/{top['id']}/rework", json={"reason": "still warm"})
    for level in (1, 2, 3):
        eventually(
            lambda lv=level: status(chain[lv], numbers[lv]) == "reopened",
            what=f"rework at level {level}",
        )
    assert eastwood.ticket(numbers[3])["delegations"] == []
    events = eastwood.call("GET", f"/api/v1/tickets/{numbers[3]}/timeline")["items"]
    assert any(e["detail"].get("note") == "still warm" for e in events if e["kind"] == "status")

    # Recall from the GC cancels every level below.
    acme.call(
        "POST", f"/api/v1/delegations/{top['id']}/recall", json={"reason": "client cancelled"}
    )
    for level in (1, 2, 3):
        eventually(
            lambda lv=level: status(chain[lv], numbers[lv]) == "cancelled",
            what=f"recall at level {level}",
        )
    assert all(node.rejected() == [] for node in chain)
