"""The outbox relay and the inbox between two in-process nodes, on SQLite and PostgreSQL.

Regression tests of fixes to: the relay's per-recipient order across batches and its behaviour
while the broker is away, ``next_seq`` under concurrency, the inbox's duplicate / stale / local
validation handling, a recall that crosses a decline, and link suspension (owned by the side
that made it, roll-ups held until the resume) with partial contract patches.

Each test gets two nodes that share nothing but (where a broker is involved) an
``InProcessBroker``: each has its own database and its own signing key, and messages cross
between them only as the signed bytes of an outbox row, fed to ``inbox.receive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.context import Identity
from account.db import session_scope
from account.delegations import service as delegation_service
from account.delegations.models import Delegation, DelegationCreate
from account.errors import Conflict
from account.links import service as link_service
from account.links.models import Contract, ContractPatch, InvitationCreate, Link, LinkPatch
from account.messaging import inbox, outbox
from account.messaging import relay as relay_module
from account.messaging.models import InboxMessage, OutboxMessage, RejectedInbound
from account.messaging.relay import OutboxRelay, retry_failed
from account.tickets import service as ticket_service
from account.tickets.models import Comment, CommentCreate, Ticket, TicketCreate, TicketEvent
from exchange.clock import aware, instant, utcnow
from exchange.envelopes import open_envelope, seal
from exchange.errors import TransportError, TransportUnavailable
from exchange.inprocess import InProcessBroker, InProcessTransport
from exchange.signing import generate_key
from exchange.transport import Delivery, Outcome
from schemas import messages as m
from tests.support.db import BACKENDS, clear_tables, database_url, engine_for

# -- nodes and fixtures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One account node: its own database and its own signing key."""

    engine: Engine
    identity: Identity

    @property
    def account_id(self) -> str:
        return self.identity.account_id

    @property
    def identities(self) -> dict[str, Identity]:
        return {self.identity.account_id: self.identity}


@pytest.fixture(scope="module", params=BACKENDS)
def engines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Engine]]:
    """Two databases of one backend (two SQLite files or two PostgreSQL databases)."""
    with ExitStack() as stack:
        pair = []
        for name in ("up", "down"):
            url = stack.enter_context(
                database_url(request.param, tmp_path_factory.mktemp(f"db-{name}"))
            )
            pair.append(stack.enter_context(engine_for(url)))
        yield pair[0], pair[1]


def _node(engine: Engine, account_id: str, label: str) -> Iterator[Node]:
    clear_tables(engine)
    yield Node(engine, Identity(account_id=account_id, label=label, key=generate_key()))
    clear_tables(engine)


@pytest.fixture
def up(engines: tuple[Engine, Engine]) -> Iterator[Node]:
    """The upstream node, ``acme``: it offers tickets."""
    yield from _node(engines[0], "acme", "ACME Vendor")


@pytest.fixture
def down(engines: tuple[Engine, Engine]) -> Iterator[Node]:
    """The downstream node, ``fixit``: it receives offers."""
    yield from _node(engines[1], "fixit", "Fixit Services")


# -- builders -------------------------------------------------------------------------------------


def deliver(data: bytes, to: Node) -> inbox.Received:
    return inbox.receive(data, engine=to.engine, identities=to.identities)


def pending_rows(node: Node, *, to: str | None = None) -> list[OutboxMessage]:
    """The node's pending outbox rows (optionally to one recipient), in id order."""
    with Session(node.engine) as session:
        statement = select(OutboxMessage).where(OutboxMessage.state == "pending")
        if to is not None:
            statement = statement.where(OutboxMessage.to_account == to)
        return list(session.exec(statement.order_by(col(OutboxMessage.id))).all())


def mark_sent(node: Node, row_ids: list[int]) -> None:
    with session_scope(node.engine) as session:
        for row_id in row_ids:
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            row.state, row.sent_at = "sent", utcnow()
            session.add(row)


def deliver_outbox(sender: Node, receiver: Node) -> list[inbox.Received]:
    """Feed the sender's pending rows to the receiver in id order and mark them sent."""
    rows = pending_rows(sender, to=receiver.account_id)
    results = [deliver(row.body, receiver) for row in rows]
    mark_sent(sender, [row.id for row in rows if row.id is not None])
    return results


def link(up: Node, down: Node, contract: Contract | None = None) -> str:
    """Link ``up`` to ``down`` end to end: invitation, acceptance, ``link.accept`` delivered."""
    with session_scope(up.engine) as session:
        _, token = link_service.create_invitation(
            session=session,
            identity=up.identity,
            invitation_in=InvitationCreate(contract=contract or Contract()),
        )
    with session_scope(down.engine) as session:
        link_id = link_service.accept_invitation(
            session=session, identity=down.identity, token=token
        ).id
    results = deliver_outbox(down, up)
    assert [(r.message_type, r.outcome) for r in results] == [("link.accept", "applied")]
    return link_id


def new_ticket(node: Node, title: str = "ATM 0417 out of service") -> int:
    with session_scope(node.engine) as session:
        ticket = ticket_service.create(
            session=session, account_id=node.account_id, ticket_in=TicketCreate(title=title)
        )
        assert ticket.id is not None
        return ticket.id


def delegate(up: Node, ticket_id: int, to: Node) -> str:
    """Offer the ticket to ``to``; the offer waits in ``up``'s outbox. Returns the id."""
    with session_scope(up.engine) as session:
        ticket = ticket_service.get_by_id(session=session, ticket_id=ticket_id)
        delegation = delegation_service.delegate(
            session=session,
            identity=up.identity,
            ticket=ticket,
            delegation_in=DelegationCreate(partner=to.account_id),
            actor="disp",
        )
        return delegation.delegation_id


def offered_ticket(node: Node, delegation_id: str) -> Ticket:
    """The ticket an incoming delegation created on ``node``."""
    with Session(node.engine) as session:
        delegation = delegation_service.get(
            session=session, account_id=node.account_id, delegation_id=delegation_id
        )
        return ticket_service.get_by_id(session=session, ticket_id=delegation.ticket_id)


def delegation_row(node: Node, delegation_id: str) -> Delegation:
    with Session(node.engine) as session:
        return delegation_service.get(
            session=session, account_id=node.account_id, delegation_id=delegation_id
        )


def link_row(node: Node, link_id: str) -> Link:
    with Session(node.engine) as session:
        return link_service.get(session=session, account_id=node.account_id, link_id=link_id)


def count(node: Node, table: type[object]) -> int:
    with Session(node.engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def accept_offer(down: Node, delegation_id: str) -> int:
    """Downstream accepts the incoming offer; returns its ticket id."""
    ticket_id = offered_ticket(down, delegation_id).id
    assert ticket_id is not None
    with session_scope(down.engine) as session:
        ticket = ticket_service.get_by_id(session=session, ticket_id=ticket_id)
        delegation_service.accept(session=session, identity=down.identity, ticket=ticket, actor="e")
    return ticket_id


def change_status(node: Node, ticket_id: int, target: str) -> None:
    with session_scope(node.engine) as session:
        ticket = ticket_service.get_by_id(session=session, ticket_id=ticket_id)
        delegation_service.change_status(
            session=session,
            identity=node.identity,
            ticket=ticket,
            target=target,
            note="",
            actor="e",
        )


def patch_link(node: Node, link_id: str, patch_in: LinkPatch) -> None:
    with session_scope(node.engine) as session:
        row = link_service.get(session=session, account_id=node.account_id, link_id=link_id)
        link_service.patch(session=session, identity=node.identity, link=row, patch_in=patch_in)


def comment_body(text: str) -> m.TicketComment:
    return m.TicketComment(
        comment_id=str(uuid.uuid4()), author="eng", body=text, created_at=instant(utcnow())
    )


# -- relay helpers --------------------------------------------------------------------------------


def enqueue_comment(node: Node, to: str, text: str) -> tuple[int, str]:
    """A ``ticket.comment`` row from ``node`` to ``to`` in the outbox: ``(row id, message id)``."""
    with session_scope(node.engine) as session:
        row = outbox.enqueue(
            session=session,
            identity=node.identity,
            to=to,
            link_id=str(uuid.uuid4()),
            message_type="ticket.comment",
            subject=str(uuid.uuid4()),
            seq=1,
            body=comment_body(text),
        )
        session.flush()  # enqueue leaves the row to the caller's flush
        assert row.id is not None
        return row.id, row.message_id


def outbox_row(node: Node, row_id: int) -> OutboxMessage:
    with Session(node.engine) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        return row


def set_next_try(node: Node, row_id: int, at: datetime) -> None:
    with session_scope(node.engine) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        row.next_try_at = at
        session.add(row)


async def consumed(
    transport: InProcessTransport, account_id: str, expected: int, timeout: float = 5.0
) -> list[str | None]:
    """Consume ``account_id``'s inbox until ``expected`` messages came; their ids, in order."""
    ids: list[str | None] = []
    enough = asyncio.Event()

    async def handler(delivery: Delivery) -> Outcome:
        ids.append(delivery.message_id)
        if len(ids) >= expected:
            enough.set()
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(account_id, handler))
    try:
        await asyncio.wait_for(enough.wait(), timeout=timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert transport.broker.ready_count(account_id) == 0, "more messages than expected"
    return ids


# -- the relay ------------------------------------------------------------------------------------


async def test_relay_keeps_each_recipients_order_across_batches_while_one_row_backs_off(
    up: Node,
) -> None:
    broker = InProcessBroker()
    transport = InProcessTransport(broker)
    await transport.connect()
    await transport.declare_inbox("y")
    relay = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)
    r1, r2, r3, r4 = (
        enqueue_comment(up, to, text)
        for to, text in (("x", "r1"), ("y", "r2"), ("x", "r3"), ("y", "r4"))
    )

    assert await relay.drain_once() == 4
    assert await consumed(transport, "y", 2) == [r2[1], r4[1]], "y is not held up by x"
    first = outbox_row(up, r1[0])
    assert (first.state, first.last_error, first.tries) == ("pending", "unroutable", 1)
    assert aware(first.next_try_at) > utcnow(), "r1 backs off"
    behind = outbox_row(up, r3[0])
    assert (behind.state, behind.last_error, behind.tries) == ("pending", None, 0), (
        "r3 is not tried while r1, ahead of it, could not go"
    )
    assert [outbox_row(up, r[0]).state for r in (r2, r4)] == ["sent", "sent"]

    await relay.drain_once()
    assert (outbox_row(up, r1[0]).tries, outbox_row(up, r3[0]).tries) == (1, 0), (
        "a later pass leaves x alone while r1 backs off: r3 does not overtake it"
    )

    # x gets an inbox while r1 is still backing off: r3 must still wait behind r1.
    await transport.declare_inbox("x")
    set_next_try(up, r1[0], utcnow() + timedelta(hours=1))
    await relay.drain_once()
    assert broker.ready_count("x") == 0, "nothing to x before r1's backoff is over"
    assert outbox_row(up, r3[0]).state == "pending"

    set_next_try(up, r1[0], utcnow() - timedelta(seconds=1))
    await relay.drain_once()
    assert await consumed(transport, "x", 2) == [r1[1], r3[1]]
    assert [outbox_row(up, r[0]).state for r in (r1, r2, r3, r4)] == ["sent"] * 4
    assert outbox_row(up, r1[0]).last_error is None
    assert relay.published == 4
    await transport.close()


async def test_relay_leaves_every_row_pending_and_uncounted_while_the_broker_is_down(
    up: Node,
) -> None:
    broker = InProcessBroker()
    transport = InProcessTransport(broker)
    await transport.connect()
    for account in ("x", "y"):
        await transport.declare_inbox(account)
    relay = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)
    rows = [enqueue_comment(up, to, f"m{n}") for n, to in enumerate(("x", "y", "x"))]

    broker.down = True
    with pytest.raises(TransportUnavailable):
        await relay.drain_once()
    for row_id, _ in rows:
        row = outbox_row(up, row_id)
        assert (row.state, row.tries, row.last_error) == ("pending", 0, None)
    assert relay.published == 0

    broker.down = False
    await transport.connect()
    assert await relay.drain_once() == 3
    assert [outbox_row(up, row_id).state for row_id, _ in rows] == ["sent"] * 3
    assert await consumed(transport, "x", 2) == [rows[0][1], rows[2][1]]
    assert await consumed(transport, "y", 1) == [rows[1][1]]
    await transport.close()


class _Watched(InProcessTransport):
    """An in-process transport that records how many publishes are in flight, per recipient.

    Each publish yields to the event loop a few times before it is "confirmed", so publishes
    the relay runs at the same time overlap. ``refuse`` lists message ids the broker nacks once.
    """

    def __init__(self, broker: InProcessBroker, refuse: set[str] | None = None) -> None:
        super().__init__(broker)
        self.refuse = set(refuse or ())
        self.in_flight: dict[str, int] = {}
        self.max_per_recipient = 0
        self.max_total = 0

    async def publish(
        self,
        *,
        to: str,
        body: bytes,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.in_flight[to] = self.in_flight.get(to, 0) + 1
        self.max_per_recipient = max(self.max_per_recipient, self.in_flight[to])
        self.max_total = max(self.max_total, sum(self.in_flight.values()))
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            if message_id in self.refuse:
                self.refuse.discard(message_id)
                raise TransportError("broker refused the message (nack)")
            await super().publish(to=to, body=body, message_id=message_id, headers=headers)
        finally:
            self.in_flight[to] -= 1


@contextlib.contextmanager
def commits_on(engine: Engine) -> Iterator[list[int]]:
    """A list that grows by one on every commit of ``engine`` inside the block."""
    seen: list[int] = []

    def on_commit(_conn: object) -> None:
        seen.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", on_commit)


async def test_relay_publishes_recipients_side_by_side_each_one_row_at_a_time_and_settles_once(
    up: Node,
) -> None:
    broker = InProcessBroker()
    transport = _Watched(broker)
    await transport.connect()
    recipients = ("x", "y", "z")
    for account in recipients:
        await transport.declare_inbox(account)
    relay = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)
    rows = [enqueue_comment(up, to, f"{to}{n}") for n in range(3) for to in recipients]

    with commits_on(up.engine) as commits:
        assert await relay.drain_once() == 9
    assert transport.max_per_recipient == 1, "two rows to one recipient were in flight at once"
    assert transport.max_total == 3, "recipients were not published to side by side"
    assert len(commits) == 1, f"{len(commits)} commits: the batch was not settled at once"
    assert [outbox_row(up, row_id).state for row_id, _ in rows] == ["sent"] * 9
    assert all(outbox_row(up, row_id).tries == 1 for row_id, _ in rows)
    assert relay.published == 9
    for n, account in enumerate(recipients):
        assert await consumed(transport, account, 3) == [rows[n + 3 * i][1] for i in range(3)]
    await transport.close()


async def test_a_nacked_row_holds_only_its_recipients_later_rows_and_keeps_their_order(
    up: Node,
) -> None:
    broker = InProcessBroker()
    r1, r2, r3, r4 = (
        enqueue_comment(up, to, text)
        for to, text in (("x", "r1"), ("y", "r2"), ("x", "r3"), ("y", "r4"))
    )
    transport = _Watched(broker, refuse={r1[1]})
    await transport.connect()
    for account in ("x", "y"):
        await transport.declare_inbox(account)
    relay = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)

    assert await relay.drain_once() == 4
    assert await consumed(transport, "y", 2) == [r2[1], r4[1]], "y is not held up by x"
    assert broker.ready_count("x") == 0, "r3 must not overtake the refused r1"
    first = outbox_row(up, r1[0])
    assert (first.state, first.tries) == ("pending", 1)
    assert (first.last_error or "").startswith("TransportError")
    assert aware(first.next_try_at) > utcnow(), "r1 backs off"
    assert (outbox_row(up, r3[0]).state, outbox_row(up, r3[0]).tries) == ("pending", 0)

    set_next_try(up, r1[0], utcnow() - timedelta(seconds=1))
    assert await relay.drain_once() == 2
    assert await consumed(transport, "x", 2) == [r1[1], r3[1]]
    assert [outbox_row(up, r[0]).state for r in (r1, r2, r3, r4)] == ["sent"] * 4
    await transport.close()


class _Killed(Exception):
    """Stands in for the SIGKILL a crash point sends when fault injection is on."""


async def test_a_crash_between_confirm_and_mark_republishes_and_the_receiver_applies_once(
    up: Node, down: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    link(up, down)
    offers = [delegate(up, new_ticket(up, f"Lift {n}"), down) for n in range(3)]
    broker = InProcessBroker()
    transport = InProcessTransport(broker)
    await transport.connect()
    await transport.declare_inbox(down.account_id)
    relay = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)

    def crash_at(name: str) -> None:
        if name == "after_confirm_before_mark_sent":
            raise _Killed(name)

    monkeypatch.setattr(relay_module, "crash_point", crash_at)
    with pytest.raises(_Killed):
        await relay.drain_once()
    assert broker.ready_count(down.account_id) == 3, "the batch was confirmed"
    assert [(r.state, r.tries) for r in pending_rows(up)] == [("pending", 0)] * 3, (
        "nothing is marked sent before the crash point"
    )

    monkeypatch.undo()  # "restart": the same rows go again
    fresh = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)
    assert await fresh.drain_once() == 3
    assert pending_rows(up) == []
    outcomes: list[str] = []

    async def apply(delivery: Delivery) -> Outcome:
        outcomes.append(deliver(delivery.body, down).outcome)
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(down.account_id, apply))
    try:
        for _ in range(500):
            if len(outcomes) == 6:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert outcomes == ["applied"] * 3 + ["duplicate"] * 3
    assert count(down, Ticket) == 3
    assert sorted(offers) == sorted(
        delegation_row(down, delegation_id).delegation_id for delegation_id in offers
    )
    await transport.close()


# -- next_seq -------------------------------------------------------------------------------------


def test_next_seq_hands_out_distinct_gapless_numbers_to_concurrent_transactions(
    up: Node, down: Node
) -> None:
    link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    row = delegation_row(up, delegation_id)
    start, row_pk = row.seq_out, row.id
    assert start == 1, "the offer took seq 1"
    workers = 8
    barrier = threading.Barrier(workers)

    def take() -> int:
        barrier.wait(timeout=10)
        with Session(up.engine) as session:
            seq = outbox.next_seq(session, Delegation, row_pk)
            time.sleep(0.005)  # hold the row while the others try to take a number
            session.commit()
            return seq

    with ThreadPoolExecutor(max_workers=workers) as pool:
        taken = [f.result(timeout=30) for f in [pool.submit(take) for _ in range(workers)]]

    assert sorted(taken) == list(range(start + 1, start + workers + 1))
    assert delegation_row(up, delegation_id).seq_out == start + workers


# -- the inbox ------------------------------------------------------------------------------------


def test_an_offer_delivered_twice_creates_one_ticket(up: Node, down: Node) -> None:
    link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    [offer] = pending_rows(up, to=down.account_id)

    assert deliver(offer.body, down).outcome == "applied"
    again = deliver(offer.body, down)
    assert (again.outcome, again.message_type) == ("duplicate", "delegation.offer")
    assert count(down, Ticket) == 1
    assert count(down, Delegation) == 1
    assert offered_ticket(down, delegation_id).status == "offered"


def test_a_stale_ticket_status_is_recorded_as_stale_and_changes_nothing(
    up: Node, down: Node
) -> None:
    link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    deliver_outbox(up, down)
    ticket_id = accept_offer(down, delegation_id)
    change_status(down, ticket_id, "in_progress")
    # Taken before the next status supersedes it in the outbox (outbox.supersede_pending): a
    # relay that read it first publishes it anyway, and it can arrive after the newer one.
    accepted, in_progress = pending_rows(down, to=up.account_id)
    change_status(down, ticket_id, "on_hold")
    [on_hold] = pending_rows(down, to=up.account_id)[1:]
    assert [r.type for r in (accepted, in_progress, on_hold)] == [
        "delegation.accept",
        "ticket.status",
        "ticket.status",
    ]

    assert deliver(accepted.body, up).outcome == "applied"
    assert deliver(on_hold.body, up).outcome == "applied"
    before = delegation_row(up, delegation_id)
    assert (before.remote_status, before.seq_in) == ("on_hold", 3)
    events, outgoing = count(up, TicketEvent), count(up, OutboxMessage)

    late = deliver(in_progress.body, up)
    assert (late.outcome, late.message_type) == ("stale", "ticket.status")
    after = delegation_row(up, delegation_id)
    assert (after.remote_status, after.state, after.seq_in) == ("on_hold", before.state, 3)
    assert (count(up, TicketEvent), count(up, OutboxMessage)) == (events, outgoing)
    with Session(up.engine) as session:
        seen = session.exec(
            select(InboxMessage.outcome).where(InboxMessage.message_id == in_progress.message_id)
        ).all()
    assert list(seen) == ["stale"], "recorded, so a redelivery is a duplicate"


def _waiting_on_a_lock(engine: Engine) -> bool:
    """Whether some session of this PostgreSQL database waits for a lock another one holds."""
    with engine.connect() as connection:
        waiting = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).scalar_one()
    return int(waiting) > 0


def test_a_copy_applied_while_the_first_commits_ends_as_a_duplicate_applied_once(
    up: Node, down: Node
) -> None:
    """Two consumers holding the same message (a redelivery while the first still applies).

    On PostgreSQL the copy reads "not seen" before the first commits, applies, waits for the
    first's row lock, and then meets the inbox row's unique key: it must end as a
    ``duplicate`` with nothing of it committed (it used to raise out of ``receive``). On
    SQLite the copy waits for the one write connection and sees the message as processed.
    """
    link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    deliver_outbox(up, down)
    ticket_id = accept_offer(down, delegation_id)
    change_status(down, ticket_id, "in_progress")
    accepted, status = pending_rows(down, to=up.account_id)
    assert deliver(accepted.body, up).outcome == "applied"
    postgres = up.engine.url.get_backend_name() == "postgresql"
    copies: list[inbox.Received] = []
    workers: list[threading.Thread] = []

    def start_the_copy(_session: Session, _identity: Identity, _opened: object) -> None:
        worker = threading.Thread(target=lambda: copies.append(deliver(status.body, up)))
        worker.start()
        workers.append(worker)
        if postgres:  # hold the commit until the copy is blocked behind this transaction
            deadline = time.monotonic() + 30
            while not _waiting_on_a_lock(up.engine):
                assert time.monotonic() < deadline, "the copy never waited for our lock"
                time.sleep(0.02)

    first = inbox.receive(
        status.body, engine=up.engine, identities=up.identities, on_applied=start_the_copy
    )
    [worker] = workers
    worker.join(timeout=30)
    assert first.outcome == "applied"
    assert [(c.outcome, c.message_id) for c in copies] == [("duplicate", status.message_id)]
    with Session(up.engine) as session:
        rows = session.exec(
            select(InboxMessage.outcome).where(InboxMessage.message_id == status.message_id)
        ).all()
    assert list(rows) == ["applied"]
    after = delegation_row(up, delegation_id)
    assert (after.remote_status, after.seq_in) == ("in_progress", status_seq(status))


def status_seq(row: OutboxMessage) -> int:
    return int(open_envelope(row.body).envelope.seq)


def test_an_empty_comment_is_rejected_as_not_applicable_and_the_next_comment_applies(
    up: Node, down: Node
) -> None:
    link_id = link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    deliver_outbox(up, down)
    ticket_id = accept_offer(down, delegation_id)
    deliver_outbox(down, up)
    up_ticket_id = delegation_row(up, delegation_id).ticket_id

    message_id, empty = seal(
        key=down.identity.key,
        sender=down.account_id,
        to=up.account_id,
        message_type="ticket.comment",
        link=link_id,
        subject=delegation_id,
        seq=99,
        body=comment_body(""),
    )
    wire = open_envelope(empty).body
    assert isinstance(wire, m.TicketComment) and wire.body == "", "the wire allows an empty body"
    rejected = deliver(empty, up)
    assert (rejected.outcome, rejected.reason) == ("rejected", "not_applicable")
    with Session(up.engine) as session:
        rows = session.exec(select(RejectedInbound)).all()
        assert [(r.message_id, r.reason, r.type) for r in rows] == [
            (message_id, "not_applicable", "ticket.comment")
        ]
        assert session.exec(select(Comment)).all() == []
        assert (
            session.exec(select(InboxMessage).where(InboxMessage.message_id == message_id)).all()
            == []
        ), "a rejected message is not marked processed"

    with session_scope(down.engine) as session:
        ticket = ticket_service.get_by_id(session=session, ticket_id=ticket_id)
        delegation_service.comment(
            session=session,
            identity=down.identity,
            ticket=ticket,
            comment_in=CommentCreate(body="engineer on site at 14:00"),
            actor="eng",
        )
    assert [(r.message_type, r.outcome) for r in deliver_outbox(down, up)] == [
        ("ticket.comment", "applied")
    ]
    with Session(up.engine) as session:
        comments = session.exec(select(Comment)).all()
    assert [(c.ticket_id, c.body, c.source_account) for c in comments] == [
        (up_ticket_id, "engineer on site at 14:00", down.account_id)
    ]


def test_a_recall_crossing_a_decline_leaves_the_downstream_ticket_declined(
    up: Node, down: Node
) -> None:
    link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    deliver_outbox(up, down)
    declined_id = offered_ticket(down, delegation_id).id
    assert declined_id is not None
    with session_scope(down.engine) as session:
        ticket = ticket_service.get_by_id(session=session, ticket_id=declined_id)
        delegation_service.decline(
            session=session, identity=down.identity, ticket=ticket, reason="no staff", actor="e"
        )
    with session_scope(up.engine) as session:
        out = delegation_service.get(
            session=session, account_id=up.account_id, delegation_id=delegation_id
        )
        delegation_service.recall(
            session=session, identity=up.identity, delegation=out, reason="moot", actor="disp"
        )

    # The two messages cross: each side receives the other's after its own change.
    assert [(r.message_type, r.outcome) for r in deliver_outbox(up, down)] == [
        ("delegation.recall", "applied")
    ]
    assert [(r.message_type, r.outcome) for r in deliver_outbox(down, up)] == [
        ("delegation.decline", "applied")
    ]
    assert offered_ticket(down, delegation_id).status == "declined", "not cancelled"
    assert delegation_row(down, delegation_id).state == "declined"
    assert delegation_row(up, delegation_id).state == "recalled"
    assert pending_rows(down) == [], "a no-op recall sends nothing back"


# -- suspension and contracts ---------------------------------------------------------------------


def test_a_peer_suspension_holds_roll_ups_and_its_resume_rolls_up_the_current_status(
    up: Node, down: Node
) -> None:
    link_id = link(up, down)
    delegation_id = delegate(up, new_ticket(up), down)
    deliver_outbox(up, down)
    ticket_id = accept_offer(down, delegation_id)
    change_status(down, ticket_id, "in_progress")
    deliver_outbox(down, up)
    assert delegation_row(up, delegation_id).remote_status == "in_progress"

    patch_link(up, link_id, LinkPatch(state="suspended"))
    assert [(r.message_type, r.outcome) for r in deliver_outbox(up, down)] == [
        ("link.suspend", "applied")
    ]
    suspended = link_row(down, link_id)
    assert (suspended.state, suspended.suspended_by) == ("suspended", "peer")
    assert (link_row(up, link_id).state, link_row(up, link_id).suspended_by) == (
        "suspended",
        "local",
    )

    with pytest.raises(Conflict):
        patch_link(down, link_id, LinkPatch(state="active"))
    assert link_row(down, link_id).state == "suspended"
    assert pending_rows(down) == [], "a refused resume sends nothing"

    change_status(down, ticket_id, "on_hold")
    assert pending_rows(down) == [], "no ticket.status crosses a suspended link"

    patch_link(up, link_id, LinkPatch(state="active"))
    assert [(r.message_type, r.outcome) for r in deliver_outbox(up, down)] == [
        ("link.suspend", "applied")
    ]
    resumed = link_row(down, link_id)
    assert (resumed.state, resumed.suspended_by) == ("active", None)
    [rolled_up] = pending_rows(down, to=up.account_id)
    assert rolled_up.type == "ticket.status"
    status = open_envelope(rolled_up.body).body
    assert isinstance(status, m.TicketStatus)
    assert status.status == "on_hold", "the status reached while suspended"

    assert [r.outcome for r in deliver_outbox(down, up)] == ["applied"]
    assert delegation_row(up, delegation_id).remote_status == "on_hold"


def test_a_partial_contract_patch_keeps_the_other_contract_fields(up: Node, down: Node) -> None:
    agreed = Contract(
        share_requester_contacts=True,
        disclose_subcontractors="anonymous",
        allow_subdelegation=False,
        categories=["atm", "printer"],
        sla={"targets": {"high": {"response_minutes": 30}}},
    )
    link_id = link(up, down, agreed)

    patch_link(up, link_id, LinkPatch(contract=ContractPatch(auto_accept=True)))

    contract = Contract.model_validate(link_row(up, link_id).contract)
    assert contract == agreed.model_copy(update={"auto_accept": True})
    assert link_row(up, link_id).state == "active"
    assert pending_rows(up) == [], "contract changes stay local"


def set_state(node: Node, row_id: int, state: str) -> None:
    with session_scope(node.engine) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        row.state = state
        session.add(row)


async def test_a_failed_row_holds_its_recipient_until_an_operator_retries_it(up: Node) -> None:
    broker = InProcessBroker()
    transport = InProcessTransport(broker)
    await transport.connect()
    await transport.declare_inbox("x")
    relay = OutboxRelay(up.engine, transport, poll_seconds=0.05, max_backoff=1.0)
    r1, r2 = (enqueue_comment(up, "x", text) for text in ("r1", "r2"))
    set_state(up, r1[0], "failed")  # as the relay leaves a row still unroutable after a day

    await relay.drain_once()
    assert broker.ready_count("x") == 0, "r2 may depend on r1: it waits behind the failed row"
    assert outbox_row(up, r2[0]).state == "pending"

    assert retry_failed(up.engine) == 1
    await relay.drain_once()
    assert await consumed(transport, "x", 2) == [r1[1], r2[1]]
    assert retry_failed(up.engine) == 0
    await transport.close()


def test_a_row_superseded_while_its_publish_failed_is_neither_retried_nor_given_up(
    up: Node,
) -> None:
    """The relay read a day-old row, the publish was refused, and meanwhile a newer state
    superseded it: the settle leaves it superseded (a ``failed`` row would hold its recipient
    until an operator acts), while a pending row in the same settle is given up as before."""
    from account.messaging import relay as relay_module

    old, _ = enqueue_comment(up, "x", "superseded meanwhile")
    kept, _ = enqueue_comment(up, "x", "still pending")
    day_ago = relay_module.utcnow() - relay_module.GIVE_UP_AFTER - timedelta(minutes=1)
    with session_scope(up.engine) as session:
        for row_id in (old, kept):
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            row.created_at = day_ago
            session.add(row)
    set_state(up, old, "superseded")

    relay_module._settle(up.engine, [], [(old, "unroutable"), (kept, "unroutable")], 1.0)

    assert (outbox_row(up, old).state, outbox_row(up, old).tries) == ("superseded", 0)
    assert (outbox_row(up, kept).state, outbox_row(up, kept).tries) == ("failed", 1)
