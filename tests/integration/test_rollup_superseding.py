"""Roll-up superseding: an unsent ``ticket.status`` gives way to a newer one about the same subject.

``account.messaging.outbox.supersede_pending``: bodies are state (ARCHITECTURE §5), so an
older roll-up still waiting in the outbox says nothing the newer one does not. These tests hold
the outboxes (nothing is collected between steps, as when the relay lags behind) and check that
the older rows are superseded only while pending and only at the tail of their subject, that
the chain ends exactly where delivering every roll-up would have left it, and that neither a
crash before the superseding commit nor a relay that read the old row first loses anything.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from account.delegations import service as delegation_service
from account.messaging import outbox
from account.messaging.models import OutboxMessage
from account.tickets.models import CommentCreate, Ticket
from tests.support.inproc import (
    OK_OUTCOMES,
    ChainShape,
    InFlight,
    Net,
    build_chain,
    frozen_clock,
    node_view,
)

DEPTH = 3  # gc > l1 > l2 > l3


@dataclass
class Built:
    net: Net
    numbers: dict[str, str]
    members: list[str]
    end: datetime


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, db_backend: str) -> Iterator[Built]:
    """One chain gc > l1 > l2 > l3, accepted at every level and drained; tests fork it."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with frozen_clock(start) as clock:
        net = Net(tmp_path_factory.mktemp("chain"), db_backend)
        chain = build_chain(net, ChainShape(DEPTH), clock)
        end = clock.now
    assert not net.network
    yield Built(net=net, numbers=chain.numbers, members=chain.members, end=end)
    net.close()


@pytest.fixture
def fork(built: Built, tmp_path: Path) -> Iterator[Net]:
    with built.net.fork(tmp_path / "fork") as net:
        yield net


def _hold_status(
    net: Net, name: str, number: str, target: str, *, commit: bool = True
) -> list[str]:
    """``change_status`` as the status endpoint calls it, with nothing collected after it.

    Without ``commit`` the transaction ends as a process killed before its commit leaves it:
    rolled back. Returns the unsent outbox states as the transaction saw them before its end.
    """
    peer = net.peers[name]
    with peer.session() as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        delegation_service.change_status(
            session=session,
            identity=peer.identity,
            ticket=ticket,
            target=target,
            note=f"{name} {target}",
            actor="technician",
        )
        session.flush()
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        seen = [row.state for row in rows if row.state != "sent"]
        if commit:
            session.commit()
        else:
            session.rollback()
    return seen


def _rows(net: Net, name: str) -> list[tuple[str, str, str]]:
    """(type, to, state) of every outbox row of ``name`` written after the chain was built."""
    with net.peers[name].session() as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        return [(r.type, r.to_account, r.state) for r in rows if r.state != "sent"]


def _states(net: Net, name: str) -> list[str]:
    return [state for _type, _to, state in _rows(net, name)]


def _check_clean(net: Net) -> None:
    assert all(d.outcome in OK_OUTCOMES for d in net.deliveries), [
        (d.message.type, d.outcome, d.reason) for d in net.deliveries
    ]
    assert net.rejected() == {}
    assert {name: peer.pending() for name, peer in net.peers.items()} == dict.fromkeys(net.peers, 0)


def _views(net: Net, built: Built) -> dict[str, dict[str, Any]]:
    return {name: node_view(net.peers[name], built.numbers[name]) for name in built.members}


def test_a_pending_roll_up_is_superseded_by_the_next_one_about_the_same_subject(
    built: Built, fork: Net
) -> None:
    with frozen_clock(built.end) as clock:
        for target in ("on_hold", "in_progress", "resolved"):
            clock.tick()
            _hold_status(fork, "l1", built.numbers["l1"], target)
        assert _rows(fork, "l1") == [
            ("ticket.status", "gc", "superseded"),
            ("ticket.status", "gc", "superseded"),
            ("ticket.status", "gc", "pending"),
        ]
        clock.tick()
        (message,) = fork.collect("l1")  # superseded rows never leave
        assert json.loads(message.data)["body"]["status"] == "resolved"
        fork.drain_fifo()
    (node,) = node_view(fork.peers["gc"], built.numbers["gc"])["tree"]
    assert (node["status"], node["state"]) == ("resolved", "resolved")
    assert _states(fork, "l1") == ["superseded", "superseded"]
    _check_clean(fork)


def test_a_roll_up_that_already_left_is_never_superseded(built: Built, fork: Net) -> None:
    with frozen_clock(built.end) as clock:
        for target in ("on_hold", "in_progress"):
            clock.tick()
            fork.set_status("l1", built.numbers["l1"], target)  # collected: sent at once
        first, second = fork.network  # both left, one after the other
        assert (first.type, second.type) == ("ticket.status", "ticket.status")
        assert second.seq == first.seq + 1
        assert _rows(fork, "l1") == []  # both sent, none superseded
        fork.drain_fifo()
    _check_clean(fork)


def test_a_roll_up_followed_by_another_message_about_its_subject_is_kept(
    built: Built, fork: Net
) -> None:
    peer = fork.peers["l1"]
    with frozen_clock(built.end) as clock:
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "on_hold")
        clock.tick()
        with peer.session() as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == built.numbers["l1"])).one()
            delegation_service.comment(
                session=session,
                identity=peer.identity,
                ticket=ticket,
                comment_in=CommentCreate(body="waiting for the part", visibility="partner"),
                actor="technician",
            )
            session.commit()
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "in_progress")
        # The status before the comment stays: the GC applies all three in the order written.
        assert [(t, s) for t, to, s in _rows(fork, "l1") if to == "gc"] == [
            ("ticket.status", "pending"),
            ("ticket.comment", "pending"),
            ("ticket.status", "pending"),
        ]
        fork.drain_fifo()
    _check_clean(fork)


SCRIPT = [
    ("l3", "in_progress"),
    ("l3", "on_hold"),
    ("l2", "on_hold"),
    ("l3", "in_progress"),
    ("l2", "in_progress"),
    ("l1", "on_hold"),
    ("l3", "resolved"),
    ("l1", "in_progress"),
]


def _run(built: Built, directory: Path, *, hold: bool) -> tuple[dict[str, Any], int]:
    """``SCRIPT`` on a fork, delivering after every step (``hold=False``) or only at the end,
    round after round (each round delivers everything in flight before collecting again, as a
    lagging relay would); returns every member's view and how many rows were superseded."""
    with frozen_clock(built.end) as clock, built.net.fork(directory) as net:
        for name, target in SCRIPT:
            clock.tick()
            if hold:
                _hold_status(net, name, built.numbers[name], target)
            else:
                net.set_status(name, built.numbers[name], target, note=f"{name} {target}")
                net.drain_fifo()
        clock.tick()
        for _round in range(20):
            if not net.collect():
                break
            while net.network:  # the round, without collecting what it causes
                net.deliver(0, collect=False)
        _check_clean(net)
        superseded = sum(_states(net, name).count("superseded") for name in net.peers)
        return _views(net, built), superseded


def test_the_chain_ends_where_every_roll_up_would_have_left_it(built: Built) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        expected, none = _run(built, Path(tmp) / "each", hold=False)
        actual, superseded = _run(built, Path(tmp) / "held", hold=True)
    assert none == 0
    assert superseded >= 4  # l3's first three roll-ups to l2, l2's first one to l1, ...
    assert actual == expected
    (l1,) = expected["gc"]["tree"]
    assert l1["status"] == "in_progress"
    assert l1["delegations"][0]["delegations"][0]["status"] == "resolved"


def _read_pending(net: Net, name: str) -> list[InFlight]:
    """What the relay reads for its batch: the pending rows, not yet marked."""
    with net.peers[name].session() as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.state == "pending")
            .order_by(col(OutboxMessage.id))
        ).all()
        return [
            InFlight(
                message_id=r.message_id,
                type=r.type,
                sender=r.account_id,
                to=r.to_account,
                subject=r.subject,
                seq=int(json.loads(r.body)["seq"]),
                data=bytes(r.body),
            )
            for r in rows
        ]


def test_a_row_the_relay_read_before_it_was_superseded_still_converges(
    built: Built, fork: Net
) -> None:
    with frozen_clock(built.end) as clock:
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "on_hold")
        (batch,) = _read_pending(fork, "l1")  # the relay has it in hand ...
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "resolved")  # ... when it is superseded
        assert _states(fork, "l1") == ["superseded", "pending"]
        fork.network.append(batch)  # published all the same
        assert fork.deliver(len(fork.network) - 1).outcome == "applied"
        with fork.peers["l1"].session() as session:  # marked sent only where still pending
            marked = session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.message_id) == batch.message_id)
                .where(col(OutboxMessage.state) == "pending")
                .values(state="sent")
            )
            session.commit()
        assert marked.rowcount == 0  # type: ignore[attr-defined]
        clock.tick()
        fork.drain_fifo()
        assert [d.outcome for d in fork.deliveries[-1:]] == ["applied"]
    (node,) = node_view(fork.peers["gc"], built.numbers["gc"])["tree"]
    assert (node["status"], node["state"]) == ("resolved", "resolved")
    _check_clean(fork)


def test_a_crash_between_superseding_and_the_commit_loses_nothing(built: Built, fork: Net) -> None:
    with frozen_clock(built.end) as clock:
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "on_hold")

        clock.tick()
        seen = _hold_status(fork, "l1", built.numbers["l1"], "in_progress", commit=False)
        assert seen == ["superseded", "pending"]  # it had superseded the old row when it died
        assert _states(fork, "l1") == ["pending"]  # rolled back: the old row still waits
        # After the restart the old roll-up leaves; the status change was never committed.
        clock.tick()
        fork.drain_fifo()
        (node,) = node_view(fork.peers["gc"], built.numbers["gc"])["tree"]
        assert node["status"] == "on_hold"

        # Committed, then killed before the relay published: the new row waits as pending
        # and leaves after the restart (a fresh engine, as a new process would have).
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "in_progress")
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "resolved")
        fork.peers["l1"].engine.dispose()
        assert _states(fork, "l1") == ["superseded", "pending"]
        clock.tick()
        fork.drain_fifo()
    (node,) = node_view(fork.peers["gc"], built.numbers["gc"])["tree"]
    assert (node["status"], node["state"]) == ("resolved", "resolved")
    _check_clean(fork)


def test_nothing_is_superseded_about_another_subject_or_behind_another_type(
    built: Built, fork: Net
) -> None:
    peer = fork.peers["l1"]
    with frozen_clock(built.end) as clock:
        clock.tick()
        _hold_status(fork, "l1", built.numbers["l1"], "on_hold")
        with peer.session() as session:
            assert (
                outbox.supersede_pending(
                    session=session,
                    account_id="l1",
                    to="gc",
                    subject="no-such-subject",
                    message_type="ticket.status",
                )
                == 0
            )
            (row,) = session.exec(
                select(OutboxMessage).where(OutboxMessage.state == "pending")
            ).all()
            assert (
                outbox.supersede_pending(
                    session=session,
                    account_id="l1",
                    to="gc",
                    subject=row.subject,
                    message_type="ticket.comment",  # another type at the tail: kept
                )
                == 0
            )
            session.rollback()
        assert _states(fork, "l1") == ["pending"]
