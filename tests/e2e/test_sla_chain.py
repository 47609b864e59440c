"""SLA over real RabbitMQ: four node processes, a controllable clock, a breach at level 3.

Every node reads the same clock-offset file (the test-only hook in ``exchange.clock``), so the
test moves the whole federation forward in time at once. Only the l2 → l3 contract is tight:
the warning and then the breach of level 3 must reach the GC exactly once, with the level and
the company, even though l2 — the node that watches that clock — is killed before the deadline
and started again after it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.test_chain import flat, work_down
from tests.support.nodes import NodeFactory, NodeProcess, eventually, link


def policy(response: int, resolution: int) -> dict[str, Any]:
    targets = {"response_minutes": response, "resolution_minutes": resolution}
    return {"targets": {p: targets for p in ("critical", "high", "normal", "low")}}


def sla_events(node: NodeProcess, number: str) -> list[tuple[str, int, str | None]]:
    items = node.call("GET", f"/api/v1/tickets/{number}/timeline")["items"]
    return [
        (item["kind"], item["level"], item["source_account"])
        for item in items
        if item["kind"].startswith("sla_")
    ]


def test_a_level_three_breach_reaches_the_gc_once_across_a_restart_of_the_watching_node(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    env = {
        "TIX_FAULT_INJECTION": "1",
        "TIX_CLOCK_OFFSET_FILE": str(offset),
        "TIX_SLA_TICK_SECONDS": "0.2",
    }
    chain = [nodes(name, start=False) for name in ("gc", "l1", "l2", "l3")]
    for node in chain:
        node.start(env)
    gc, l1, l2, l3 = chain
    link(gc, l1, {"sla": policy(60, 600)})
    link(l1, l2, {"sla": policy(60, 300)})
    link(l2, l3, {"sla": policy(10, 60)})

    first = gc.call("POST", "/api/v1/tickets", json={"title": "ATM 17 rejects cards"})["number"]
    numbers = work_down(chain, first)
    eventually(lambda: l2.ticket(numbers[2])["delegations"][0]["state"] == "accepted")
    due = l2.ticket(numbers[2])["delegations"][0]["due"]
    assert due["resolve_by"] and due["response_by"]
    assert l3.ticket(numbers[3])["sla"]["resolution"]["due_at"] == due["resolve_by"]

    offset.write_text(str(50 * 60))  # 50 minutes on: past 75 % of level 3's 60
    eventually(
        lambda: sla_events(gc, first) == [("sla_warning", 3, l3.account_id)],
        timeout=30,
        what="the warning at the GC",
    )
    # The ticket's SLA state rolls up in its own message, which may land after the warning's.
    eventually(
        lambda: [t["number"] for t in gc.tickets(sla="at_risk")] == [first],
        timeout=30,
        what="the ticket at risk in the GC's list",
    )

    l2.kill()  # the node watching level 3's clock is down across the deadline
    offset.write_text(str(62 * 60))
    time.sleep(1.0)
    assert sla_events(gc, first) == [("sla_warning", 3, l3.account_id)]
    l2.start(env)

    eventually(
        lambda: ("sla_breach", 3, l3.account_id) in sla_events(gc, first),
        timeout=30,
        what="the breach at the GC",
    )
    time.sleep(1.5)  # several more sweeps on every node: nothing new may arrive
    assert sla_events(gc, first) == [
        ("sla_warning", 3, l3.account_id),
        ("sla_breach", 3, l3.account_id),
    ]
    assert [t["number"] for t in gc.tickets(sla="breached")] == [first]
    tree = gc.call("GET", f"/api/v1/tickets/{first}/chain")
    states = [(d["level"], d["sla"]["state"]) for d in flat(tree["delegations"])]
    assert states == [(1, "ok"), (2, "ok"), (3, "breached")]
    leaf = flat(tree["delegations"])[2]
    assert [e["kind"] for e in leaf["sla"]["events"]] == ["warning", "breach"]
    assert leaf["sla"]["events"][1]["partner_label"] == l3.label
    assert leaf["due"]["resolve_by"] == due["resolve_by"]
    for node in chain:
        assert node.rejected() == [], node.account_id
