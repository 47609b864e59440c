"""Roll-up convergence: any delivery order and any duplicates end in the same chain everywhere.

ARCHITECTURE §4 and §5: ``ticket.status`` bodies carry state (the latest status and the whole
disclosed subtree), ``seq`` rises by one per (subject, sender), and a receiver applies a message
only if its ``seq`` is higher than the last one applied. So however the network reorders or
repeats roll-ups, once it is drained every node must show the same chain as if every message
had been delivered at once and in order (RELIABILITY, "The oracle": convergence, no unexpected
rejects, duplicates applied once).

The property builds a chain (cached per shape, then forked into fresh databases), runs a random
script of local status changes twice under the same frozen clock: once delivering everything in
order after each step (the reference), once holding every upward message and then delivering
them, and whatever they cause, in a Hypothesis-chosen order with Hypothesis-chosen duplicates.
Timestamps are compared too: ``accepted_at`` and ``resolved_at`` come from message bodies, so
they must converge like the statuses.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlmodel import select

from account.delegations.models import Delegation
from account.messaging.models import InboxMessage
from account.tickets import states
from exchange.clock import instant
from tests.support.inproc import (
    OK_OUTCOMES,
    Chain,
    ChainShape,
    Net,
    build_chain,
    frozen_clock,
    gc_tree,
    node_view,
)

UPWARD_TYPES = frozenset({"ticket.status", "delegation.accept"})
MAX_CHAOS_DELIVERIES = 500
MAX_SCRIPT_STEPS = 8

# Script moves: what a chain member may do to its own ticket (never what only its upstream may
# set, never a terminal status, which would end the script for that member).
SCRIPT_TARGETS = frozenset(states.TICKET_STATUSES) - states.UPSTREAM_OWNED - states.TERMINAL_TICKET

# Once a bug (a roll-up leaving ``resolved`` kept the upstream's ``resolved_at``); fixed, so the
# property moves resolved tickets on too. Kept as a switch to narrow the search when debugging.
LEAVING_RESOLVED_CONVERGES = True

SHAPES = [
    ChainShape(depth, split) for depth in (2, 3, 4) for split in (None, *range(depth))
]  # every chain of 2 to 4 levels, straight or split in two at one level


# -- chains, built once per shape and forked per run ----------------------------------------------


@dataclass
class Built:
    """A chain set up in order and fully drained, and the frozen time its set-up ended."""

    net: Net
    chain: Chain
    end: datetime


class ChainCache:
    """Builds each chain shape once; every run forks the built databases into a fresh dir."""

    def __init__(self, root: Path, backend: str) -> None:
        self.root = root
        self.backend = backend
        self.built: dict[ChainShape, Built] = {}
        # JWT ``iat`` is checked against the real clock: start the frozen one in the past.
        self.start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def get(self, shape: ChainShape) -> Built:
        if shape not in self.built:
            directory = self.root / f"chain-{len(self.built)}"
            with frozen_clock(self.start) as clock:
                net = Net(directory, self.backend)
                chain = build_chain(net, shape, clock)
                self.built[shape] = Built(net=net, chain=chain, end=clock.now)
            assert not net.network
            assert {d.outcome for d in net.deliveries} == {"applied"}
        return self.built[shape]

    def close(self) -> None:
        for built in self.built.values():
            built.net.close()


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory, db_backend: str) -> Iterator[ChainCache]:
    cache = ChainCache(tmp_path_factory.mktemp("chains"), db_backend)
    yield cache
    cache.close()


@pytest.fixture(scope="module")
def forks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("forks")


# -- what the runs are compared on --------------------------------------------------------------


def snapshot(net: Net, chain: Chain) -> dict[str, dict[str, Any]]:
    """Every member's view: own status, incoming delegation state, and its tree below."""
    return {name: node_view(net.peers[name], chain.numbers[name]) for name in chain.members}


def check_clean(net: Net) -> None:
    """No reject anywhere, no outbox row left, every repeat recognised, seqs applied in order."""
    outcomes = [(d.message.type, d.message.to, d.outcome, d.reason) for d in net.deliveries]
    assert all(d.outcome in OK_OUTCOMES for d in net.deliveries), outcomes
    assert net.rejected() == {}
    assert {name: peer.pending() for name, peer in net.peers.items()} == dict.fromkeys(net.peers, 0)
    seen: set[str] = set()
    applied_seqs: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for d in net.deliveries:
        if d.message.message_id in seen:
            assert d.outcome == "duplicate", (d.message.type, d.message.seq, d.outcome)
        seen.add(d.message.message_id)
        if d.outcome == "applied" and d.message.type in UPWARD_TYPES:
            applied_seqs[(d.message.to, d.message.sender, d.message.subject)].append(d.message.seq)
    for key, seqs in applied_seqs.items():
        assert seqs == sorted(set(seqs)), (key, seqs)


def script_moves(net: Net, chain: Chain, name: str) -> list[str]:
    """The statuses a script may move this member's ticket to now."""
    status = net.peers[name].ticket(chain.numbers[name]).status
    if status == "resolved" and not LEAVING_RESOLVED_CONVERGES:
        return []
    return sorted(states.allowed_moves(status) & SCRIPT_TARGETS)


# -- the property ---------------------------------------------------------------------------------


# PostgreSQL forks cost a database clone per peer: fewer examples there (the protocol logic
# is the same on both; the PostgreSQL half is for what only that database shows).
EXAMPLES = {"sqlite": 40, "postgresql": 10}


def test_roll_ups_converge_whatever_the_order_and_duplicates_of_delivery(
    chains: ChainCache, forks: Path
) -> None:
    @settings(
        max_examples=EXAMPLES[chains.backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(shape=st.sampled_from(SHAPES), data=st.data())
    def converges(shape: ChainShape, data: st.DataObject) -> None:
        check_convergence(shape, data, chains, forks)

    converges()


def check_convergence(
    shape: ChainShape, data: st.DataObject, chains: ChainCache, forks: Path
) -> None:
    built = chains.get(shape)
    chain = built.chain
    with tempfile.TemporaryDirectory(dir=forks) as tmp:
        # The reference: every message delivered in order right after the step that caused it.
        # The script is drawn here, from the statuses the members really have.
        script: list[tuple[str, str]] = []
        with frozen_clock(built.end) as clock, built.net.fork(Path(tmp) / "ref") as ref:
            for _ in range(data.draw(st.integers(1, MAX_SCRIPT_STEPS), label="steps")):
                moves = {name: script_moves(ref, chain, name) for name in chain.members[1:]}
                movable = [name for name, targets in moves.items() if targets]
                if not movable:
                    break
                member = data.draw(st.sampled_from(movable), label="member")
                target = data.draw(st.sampled_from(moves[member]), label=f"{member} ->")
                script.append((member, target))
                clock.tick()
                ref.set_status(member, chain.numbers[member], target, note=f"step {len(script)}")
                ref.drain_fifo()
            check_clean(ref)
            expected = snapshot(ref, chain)
        note(f"script: {script}")

        # The same script with every upward message held, then delivered in a chosen order,
        # some twice; what those deliveries cause joins the network and is shuffled too.
        with frozen_clock(built.end) as clock, built.net.fork(Path(tmp) / "chaos") as net:
            for step, (member, target) in enumerate(script, start=1):
                clock.tick()
                net.set_status(member, chain.numbers[member], target, note=f"step {step}")
            assert {m.type for m in net.network} <= UPWARD_TYPES
            order: list[str] = []
            deliveries = 0
            while net.network:
                assert deliveries < MAX_CHAOS_DELIVERIES, "the network did not drain"
                i = data.draw(st.integers(0, len(net.network) - 1), label="deliver")
                message = net.network[i]
                duplicate = not message.duplicated and data.draw(st.booleans(), label="twice")
                clock.tick()  # later than any step: nothing may depend on when it arrives
                delivered = net.deliver(i, duplicate=duplicate)
                order.append(f"{message.sender}>{message.to} #{message.seq} {delivered.outcome}")
                deliveries += 1
            note(f"chaos deliveries: {order}")
            outcomes = [d.outcome for d in net.deliveries[-deliveries:]]
            event("overtaken roll-ups", outcomes.count("stale"))
            event("repeated roll-ups", outcomes.count("duplicate"))
            check_clean(net)
            actual = snapshot(net, chain)

    assert actual["gc"]["tree"] == expected["gc"]["tree"]
    assert actual == expected


# -- deterministic cases ---------------------------------------------------------------------------


Fork = Callable[[ChainShape], tuple[Net, Built]]


@pytest.fixture
def fork(chains: ChainCache, forks: Path) -> Iterator[Fork]:
    """Fresh forks of built chains, closed and deleted after the test."""
    with ExitStack() as stack:

        def make(shape: ChainShape) -> tuple[Net, Built]:
            built = chains.get(shape)
            tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=forks))
            return stack.enter_context(built.net.fork(Path(tmp))), built

        yield make


def test_a_late_older_roll_up_never_rolls_the_gc_back(fork: Fork) -> None:
    net, built = fork(ChainShape(depth=1))  # gc > l1, accepted (l1's seq 1) and open
    l1 = built.chain.numbers["l1"]
    with frozen_clock(built.end) as clock:
        clock.tick()
        net.set_status("l1", l1, "in_progress")
        clock.tick()
        resolved_at = instant(clock.now)
        net.set_status("l1", l1, "resolved", note="replaced the pump")
        assert [(m.type, m.seq) for m in net.network] == [
            ("ticket.status", 2),
            ("ticket.status", 3),
        ]

        clock.tick()
        assert net.deliver(net.index(seq=3)).outcome == "applied"
        clock.tick()
        assert net.deliver(net.index(seq=2)).outcome == "stale"
        assert net.network == []

    (node,) = gc_tree(net.peers["gc"], built.chain.numbers["gc"])
    assert (node["status"], node["state"], node["resolved_at"]) == (
        "resolved",
        "resolved",
        resolved_at,
    )
    check_clean(net)


def test_the_same_roll_up_delivered_twice_is_applied_once(fork: Fork) -> None:
    net, built = fork(ChainShape(depth=2))  # gc > l1 > l2: l1 rolls up what l2 sends it
    chain = built.chain
    with frozen_clock(built.end) as clock:
        clock.tick()
        net.set_status("l2", chain.numbers["l2"], "on_hold")
        (message,) = net.network
        first = net.deliver(0, duplicate=True)
        assert first.outcome == "applied"
        assert net.network[0].message_id == message.message_id  # the copy still in flight
        caused = [m for m in net.network if m.message_id != message.message_id]
        assert [(m.type, m.sender, m.to) for m in caused] == [("ticket.status", "l1", "gc")]

        clock.tick()
        second = net.deliver(net.index(message_id=message.message_id))
        assert second.outcome == "duplicate"
        assert [m.message_id for m in net.network] == [m.message_id for m in caused]  # no echo
        net.drain_fifo()

    with net.peers["l1"].session() as session:
        rows = session.exec(
            select(InboxMessage).where(InboxMessage.message_id == message.message_id)
        ).all()
        (delegation,) = session.exec(
            select(Delegation).where(Delegation.delegation_id == chain.delegations["l2"])
        ).all()
    assert [row.outcome for row in rows] == ["applied"]
    assert delegation.seq_in == message.seq
    (node,) = gc_tree(net.peers["gc"], chain.numbers["gc"])
    (below,) = node["delegations"]
    assert (below["status"], below["state"]) == ("on_hold", "in_progress")
    check_clean(net)


# -- regressions: convergence bugs the property found, fixed -----------------------------------


def _gc_view_after(
    built: Built, directory: Path, script: list[tuple[str, str]], order: list[int]
) -> dict[str, Any]:
    """Run ``script`` holding every message, deliver the held ones in ``order`` (positions in
    the network at each delivery), drain the rest in order, and return the GC's view."""
    chain = built.chain
    with frozen_clock(built.end) as clock, built.net.fork(directory) as net:
        for member, action in script:
            clock.tick()
            if action == "accept":
                net.accept(member, chain.numbers[member])
            else:
                net.set_status(member, chain.numbers[member], action, note="done")
        for i in order:
            clock.tick()
            net.deliver(i)
        clock.tick()
        net.drain_fifo()
        check_clean(net)
        return node_view(net.peers["gc"], chain.numbers["gc"])


def test_leaving_resolved_converges_whatever_the_order_of_delivery(
    chains: ChainCache, forks: Path
) -> None:
    built = chains.get(ChainShape(depth=1))
    script = [("l1", "resolved"), ("l1", "in_progress")]
    with tempfile.TemporaryDirectory(dir=forks) as tmp:
        in_order = _gc_view_after(built, Path(tmp) / "fifo", script, [0, 0])
        overtaken = _gc_view_after(built, Path(tmp) / "lifo", script, [1, 0])
    (fifo_node,) = in_order["tree"]
    (lifo_node,) = overtaken["tree"]
    assert (fifo_node["status"], lifo_node["status"]) == ("in_progress", "in_progress")
    assert fifo_node["resolved_at"] == lifo_node["resolved_at"]
    assert fifo_node["resolved_at"] is None  # no longer resolved, like the ticket itself
    assert in_order == overtaken


def test_a_roll_up_that_overtakes_the_accept_converges(chains: ChainCache, forks: Path) -> None:
    built = chains.get(ChainShape(depth=1, pending_accept=True))
    script = [("l1", "accept"), ("l1", "in_progress")]
    with tempfile.TemporaryDirectory(dir=forks) as tmp:
        in_order = _gc_view_after(built, Path(tmp) / "fifo", script, [0, 0])
        overtaken = _gc_view_after(built, Path(tmp) / "lifo", script, [1, 0])
    (fifo_node,) = in_order["tree"]
    (lifo_node,) = overtaken["tree"]
    assert fifo_node["accepted_at"] == lifo_node["accepted_at"]
    assert (in_order["status"], overtaken["status"]) == ("in_progress", "in_progress")
    assert in_order == overtaken
