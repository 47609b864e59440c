"""Ticket and delegation state machines (account.tickets.states) and chain disclosure
(account.delegations.chain.disclose), per ARCHITECTURE §4. Pure functions, hand-built inputs."""

from __future__ import annotations

import copy
import json
from typing import Any, get_args

import pytest

from account.delegations.chain import disclose
from account.tickets.states import (
    OPEN_DELEGATION_STATES,
    TERMINAL_DELEGATION_STATES,
    TERMINAL_TICKET,
    TICKET_STATUSES,
    allowed_moves,
    can_move,
    delegation_state_for,
)
from schemas.common import TicketStatusName

# --- ticket status ---------------------------------------------------------------------------

# Every move ARCHITECTURE §4 names.
DOCUMENTED_MOVES = [
    ("new", "open"),
    ("open", "in_progress"),
    ("in_progress", "on_hold"),
    ("on_hold", "in_progress"),
    ("in_progress", "resolved"),
    ("on_hold", "resolved"),
    ("resolved", "closed"),
    ("resolved", "reopened"),
    ("reopened", "in_progress"),
    ("offered", "open"),
    ("offered", "declined"),
    ("offered", "cancelled"),
    ("open", "cancelled"),
    ("in_progress", "cancelled"),
]

REFUSED_MOVES = [
    ("new", "closed"),
    ("open", "closed"),
    ("in_progress", "closed"),
    ("on_hold", "closed"),
    ("offered", "in_progress"),
    ("offered", "resolved"),
    ("offered", "closed"),
    ("open", "offered"),
    ("open", "declined"),
    ("in_progress", "new"),
    ("in_progress", "open"),
    ("resolved", "on_hold"),
    ("resolved", "cancelled"),
    ("reopened", "closed"),
    ("closed", "reopened"),
    ("declined", "open"),
    ("cancelled", "open"),
]


def test_ticket_statuses_are_the_wire_status_names() -> None:
    assert set(TICKET_STATUSES) == set(get_args(TicketStatusName))
    assert len(TICKET_STATUSES) == len(set(TICKET_STATUSES))


@pytest.mark.parametrize(("current", "target"), DOCUMENTED_MOVES)
def test_allows_every_documented_move(current: str, target: str) -> None:
    assert can_move(current, target)
    assert target in allowed_moves(current)


@pytest.mark.parametrize(("current", "target"), REFUSED_MOVES)
def test_refuses_moves_the_architecture_does_not_allow(current: str, target: str) -> None:
    assert not can_move(current, target)
    assert target not in allowed_moves(current)


@pytest.mark.parametrize("status", TICKET_STATUSES)
def test_no_status_moves_to_itself(status: str) -> None:
    assert not can_move(status, status)


@pytest.mark.parametrize("status", TICKET_STATUSES)
def test_nothing_moves_back_to_new_or_offered(status: str) -> None:
    assert not can_move(status, "new")
    assert not can_move(status, "offered")


@pytest.mark.parametrize("status", sorted(TERMINAL_TICKET))
def test_terminal_ticket_statuses_have_no_moves(status: str) -> None:
    assert allowed_moves(status) == frozenset()
    assert not any(can_move(status, target) for target in TICKET_STATUSES)


def test_the_terminal_statuses_are_exactly_those_without_moves() -> None:
    assert TERMINAL_TICKET == {s for s in TICKET_STATUSES if not allowed_moves(s)}
    assert TERMINAL_TICKET == {"closed", "declined", "cancelled"}


@pytest.mark.parametrize("status", TICKET_STATUSES)
def test_moves_only_lead_to_known_statuses(status: str) -> None:
    assert allowed_moves(status) <= set(TICKET_STATUSES)


def test_an_unknown_status_has_no_moves() -> None:
    assert allowed_moves("archived") == frozenset()
    assert not can_move("archived", "open")
    assert not can_move("open", "archived")


# --- delegation state ------------------------------------------------------------------------

# Downstream ticket status → the delegation state it implies (ARCHITECTURE §4).
REMOTE_STATUS_TO_DELEGATION_STATE = {
    "offered": "offered",
    "new": "accepted",
    "open": "accepted",
    "in_progress": "in_progress",
    "on_hold": "in_progress",
    "reopened": "in_progress",
    "resolved": "resolved",
    "closed": "confirmed",
    "declined": "declined",
    "cancelled": "recalled",
}


def test_the_mapping_covers_every_ticket_status() -> None:
    assert set(REMOTE_STATUS_TO_DELEGATION_STATE) == set(TICKET_STATUSES)


@pytest.mark.parametrize("current", sorted(OPEN_DELEGATION_STATES))
@pytest.mark.parametrize(("remote", "expected"), REMOTE_STATUS_TO_DELEGATION_STATE.items())
def test_delegation_state_follows_the_downstream_ticket_status(
    current: str, remote: str, expected: str
) -> None:
    assert delegation_state_for(remote, current) == expected


@pytest.mark.parametrize("current", sorted(TERMINAL_DELEGATION_STATES))
@pytest.mark.parametrize("remote", [*TICKET_STATUSES, "archived"])
def test_terminal_delegation_states_never_change(current: str, remote: str) -> None:
    assert delegation_state_for(remote, current) == current


def test_rework_takes_a_resolved_delegation_back_to_in_progress() -> None:
    assert delegation_state_for("in_progress", "resolved") == "in_progress"
    assert delegation_state_for("reopened", "resolved") == "in_progress"


@pytest.mark.parametrize("current", sorted(OPEN_DELEGATION_STATES))
def test_an_unknown_remote_status_keeps_the_delegation_state(current: str) -> None:
    assert delegation_state_for("archived", current) == current


def test_open_and_terminal_delegation_states_do_not_overlap() -> None:
    assert not OPEN_DELEGATION_STATES & TERMINAL_DELEGATION_STATES
    assert set(REMOTE_STATUS_TO_DELEGATION_STATE.values()) == (
        OPEN_DELEGATION_STATES | TERMINAL_DELEGATION_STATES
    )


# --- chain disclosure ------------------------------------------------------------------------

PARTNERS = ("northwind-gmbh", "boiler-bros", "pipe-masters", "sparky-electric")
PARTNER_LABELS = ("Northwind GmbH", "Boiler Bros", "Pipe Masters", "Sparky Electric")


def build_node(
    level: int, partner: int, delegations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A chain node in the wire ChainNode shape."""
    return {
        "id": f"00000000-0000-4000-8000-0000000000{level}{partner}",
        "partner": PARTNERS[partner],
        "partner_label": PARTNER_LABELS[partner],
        "level": level,
        "state": "in_progress",
        "status": "in_progress",
        "offered_at": "2026-11-22T08:00:00.000Z",
        "accepted_at": None,
        "resolved_at": None,
        "due": None,
        "sla_state": "ok",
        "delegations": delegations or [],
    }


def build_tree() -> list[dict[str, Any]]:
    """Level 1 delegates to two partners; one of them delegates twice more below."""
    return [
        build_node(1, 0, [build_node(2, 1, [build_node(3, 3)]), build_node(2, 2)]),
        build_node(1, 3),
    ]


def walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in nodes:
        out.append(node)
        out.extend(walk(node.get("delegations", [])))
    return out


def test_named_disclosure_passes_the_subtree_through_unchanged() -> None:
    assert disclose(build_tree(), "named") == build_tree()


def test_hidden_disclosure_passes_nothing() -> None:
    assert disclose(build_tree(), "hidden") == []


def test_anonymous_disclosure_removes_every_partner_id_at_every_level() -> None:
    disclosed = disclose(build_tree(), "anonymous")

    assert all(node["partner"] is None for node in walk(disclosed))
    text = json.dumps(disclosed)
    for name in (*PARTNERS, *PARTNER_LABELS):
        assert name not in text


def test_anonymous_disclosure_labels_each_node_with_its_level() -> None:
    disclosed = disclose(build_tree(), "anonymous")

    assert [node["partner_label"] for node in walk(disclosed)] == [
        "subcontractor, level 1",
        "subcontractor, level 2",
        "subcontractor, level 3",
        "subcontractor, level 2",
        "subcontractor, level 1",
    ]


def test_anonymous_disclosure_keeps_the_shape_and_everything_but_the_partner() -> None:
    original = walk(build_tree())
    disclosed = walk(disclose(build_tree(), "anonymous"))

    assert len(disclosed) == len(original)
    for before, after in zip(original, disclosed, strict=True):
        for key in before.keys() - {"partner", "partner_label", "delegations"}:
            assert after[key] == before[key]
        assert len(after["delegations"]) == len(before["delegations"])


def test_anonymous_disclosure_does_not_change_its_input() -> None:
    tree = build_tree()
    before = copy.deepcopy(tree)

    disclose(tree, "anonymous")

    assert tree == before


def test_anonymous_disclosure_handles_a_node_without_delegations() -> None:
    node = build_node(1, 0)
    del node["delegations"]

    assert disclose([node], "anonymous")[0]["delegations"] == []


@pytest.mark.parametrize("policy", ["named", "anonymous", "hidden"])
def test_disclosing_an_empty_subtree_gives_an_empty_one(policy: str) -> None:
    assert disclose([], policy) == []
