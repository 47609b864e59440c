"""The oracle itself: a healthy two-level history passes; each planted fault is caught."""

from __future__ import annotations

import copy
from typing import Any

from tests.faults.oracle import Snapshot, check


def healthy() -> list[Snapshot]:
    gc_ticket = {"id": 1, "number": "GC-1", "status": "resolved", "upstream_delegation_id": None}
    leaf_ticket = {"id": 7, "number": "L-1", "status": "closed", "upstream_delegation_id": "d1"}
    out = {
        "delegation_id": "d1",
        "role": "out",
        "ticket_id": 1,
        "state": "confirmed",
        "remote_status": "closed",
        "subtree": "[]",
    }
    inn = {"delegation_id": "d1", "role": "in", "ticket_id": 7, "state": "confirmed"}
    gc = Snapshot(
        "gc",
        tickets=[gc_ticket],
        delegations=[out],
        outbox=[
            _out("m1", "leaf", "delegation.offer", "d1"),
            _out("m2", "leaf", "resolution.confirm", "d1"),
        ],
        inbox=[
            _in(1, "m3", "leaf", "ticket.status", "d1", 1),
            _in(2, "m4", "leaf", "ticket.status", "d1", 2),
        ],
        rejected=[],
        events=[{"ticket_id": 1, "kind": "confirmed", "detail": '{"delegation_id": "d1"}'}],
    )
    leaf = Snapshot(
        "leaf",
        tickets=[leaf_ticket],
        delegations=[inn],
        outbox=[
            _out("m3", "gc", "ticket.status", "d1"),
            _out("m4", "gc", "ticket.status", "d1"),
        ],
        inbox=[
            _in(1, "m1", "gc", "delegation.offer", "d1", 1),
            _in(2, "m2", "gc", "resolution.confirm", "d1", 2),
        ],
        rejected=[],
        events=[],
    )
    return [gc, leaf]


def _out(message_id: str, to: str, kind: str, subject: str) -> dict[str, Any]:
    return {
        "id": 1,
        "message_id": message_id,
        "to_account": to,
        "type": kind,
        "subject": subject,
        "state": "sent",
    }


def _in(
    row: int, message_id: str, sender: str, kind: str, subject: str, seq: int
) -> dict[str, Any]:
    return {
        "id": row,
        "message_id": message_id,
        "type": kind,
        "from_account": sender,
        "subject": subject,
        "seq": seq,
        "outcome": "applied",
    }


def test_a_healthy_history_passes() -> None:
    verdict = check(healthy(), ["GC-1"], transport_duplicates=3)
    assert verdict.ok, verdict.summary()
    assert (verdict.tickets, verdict.messages, verdict.transport_duplicates) == (1, 4, 3)


def test_a_message_missing_from_the_recipients_inbox_is_lost() -> None:
    chain = healthy()
    chain[1].inbox.pop()
    verdict = check(chain, ["GC-1"])
    assert verdict.lost == ["gc→leaf resolution.confirm m2"]


def test_an_inbox_row_nobody_sent_is_unexpected() -> None:
    chain = healthy()
    chain[0].inbox.append(_in(3, "m9", "leaf", "ticket.comment", "d1", 3))
    assert check(chain, ["GC-1"]).unexpected == ["gc ticket.comment m9"]


def test_an_offer_applied_twice_and_an_event_recorded_twice_are_duplicated_effects() -> None:
    chain = healthy()
    twin = copy.deepcopy(chain[1].tickets[0]) | {"id": 8, "number": "L-2"}
    chain[1].tickets.append(twin)
    chain[0].events.append(copy.deepcopy(chain[0].events[0]))
    duplicated = check(chain, ["GC-1"]).duplicated
    assert len(duplicated) == 2
    assert any("made 2 tickets" in d for d in duplicated)


def test_state_applied_out_of_order_is_an_order_violation() -> None:
    chain = healthy()
    chain[0].inbox[0]["seq"], chain[0].inbox[1]["seq"] = 2, 1
    assert check(chain, ["GC-1"]).order == ["gc: ticket.status seq 1 after 2"]


def test_a_level_that_did_not_close_has_not_converged() -> None:
    chain = healthy()
    chain[1].tickets[0]["status"] = "resolved"
    chain[0].delegations[0]["remote_status"] = "resolved"
    (problem,) = check(chain, ["GC-1"]).unconverged
    assert "level 1 resolved" in problem and "level 0 sees resolved" in problem


def test_rejections_fail_unless_expected_and_unsent_rows_are_stuck() -> None:
    chain = healthy()
    chain[1].rejected.append(
        {
            "id": 5,
            "message_id": "m5",
            "from_account": "gc",
            "type": "x",
            "reason": "future_sent_at",
            "detail": "",
        }
    )
    chain[0].outbox[0]["state"] = "pending"
    verdict = check(chain, ["GC-1"])
    assert len(verdict.rejections) == 1 and len(verdict.stuck) == 1
    expected = check(chain, ["GC-1"], expected_reasons=frozenset({"future_sent_at"}))
    assert expected.rejections == [] and expected.expected_rejections == 1
    earlier = check(chain, ["GC-1"], rejected_before={"leaf": 5})
    assert earlier.rejections == []


def _superseded_roll_up(chain: list[Snapshot], *, newer_arrived: bool) -> None:
    """The leaf wrote a roll-up (m6, seq 4) that superseded the one before it (m5, seq 3) while
    that one waited; ``newer_arrived``: m6 reached the GC."""
    leaf, gc = chain[1], chain[0]
    leaf.outbox.append(_out("m5", "gc", "ticket.status", "d1") | {"state": "superseded", "seq": 3})
    leaf.outbox.append(_out("m6", "gc", "ticket.status", "d1") | {"seq": 4})
    if newer_arrived:
        gc.inbox.append(_in(3, "m6", "leaf", "ticket.status", "d1", 4))


def test_a_superseded_row_counts_as_delivered_when_a_newer_state_arrived() -> None:
    chain = healthy()
    _superseded_roll_up(chain, newer_arrived=True)
    verdict = check(chain, ["GC-1"])
    assert verdict.ok, verdict.summary()
    assert (verdict.messages, verdict.superseded) == (6, 1)


def test_a_superseded_row_whose_newer_state_never_arrived_is_lost() -> None:
    chain = healthy()
    _superseded_roll_up(chain, newer_arrived=False)
    verdict = check(chain, ["GC-1"])
    assert sorted(verdict.lost) == ["leaf→gc ticket.status m5", "leaf→gc ticket.status m6"]


def test_a_superseded_row_the_relay_published_anyway_is_not_unexpected() -> None:
    chain = healthy()
    _superseded_roll_up(chain, newer_arrived=True)
    chain[0].inbox.insert(2, _in(5, "m5", "leaf", "ticket.status", "d1", 3))
    verdict = check(chain, ["GC-1"])
    assert verdict.ok, verdict.summary()
    assert verdict.unexpected == [] and verdict.superseded == 1
