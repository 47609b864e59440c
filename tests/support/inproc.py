"""A tiny in-process federation for DB-level tests: peers, a network of envelopes, a clock.

Each ``Peer`` is one account node reduced to what the protocol needs: its own database (a
SQLite file copied from a template, or a PostgreSQL database cloned from one: ``Net``'s
``backend``, the ``db_backend`` fixture), an engine and an ``Identity`` with a fresh Ed25519
key. Peers share nothing; messages cross between them only as the signed bytes of an
``OutboxMessage`` row, fed to ``account.messaging.inbox.receive`` at the recipient, exactly as
the relay and the consumer would carry them.

``Net`` owns the peers and the **network**: a list of in-flight envelopes. ``collect()`` moves
every pending outbox row of every peer into the network (marking the rows sent, as the relay
does on a broker confirm); ``deliver(i)`` applies in-flight message ``i`` at its recipient,
either removing it or, with ``duplicate=True``, leaving it in flight to be delivered again;
every delivery then collects again, because applying a message may cause roll-ups. The test
decides the order: ``drain_fifo()`` delivers in order until nothing is in flight, and a test can
hold messages and deliver them in any order it likes.

Operations go through the services the HTTP views call, each in its own session that commits,
like a request. ``FrozenClock`` makes every ``exchange.clock.utcnow()`` (default factories
included) return a time the test moves on explicitly, so two runs of the same script give the
same timestamps and can be compared field by field.

``gc_tree(peer, number)`` is a ticket's chain as the API shows it (``subtree_for`` →
``chain.api_node``), with each delegation's random id replaced by a stable ``up>down`` label.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, col, select

import exchange.clock
from account.context import Identity
from account.db import create_tables, make_engine
from account.delegations import chain
from account.delegations import service as delegation_service
from account.delegations.models import Delegation, DelegationCreate
from account.links import service as link_service
from account.links.models import Contract, InvitationCreate
from account.messaging import inbox
from account.messaging.models import OutboxMessage, RejectedInbound
from account.tickets import service as ticket_service
from account.tickets.models import Ticket, TicketCreate
from exchange.signing import generate_key
from tests.support.db import postgres_database

__all__ = [
    "OK_OUTCOMES",
    "Chain",
    "ChainShape",
    "Delivered",
    "FrozenClock",
    "InFlight",
    "Net",
    "Peer",
    "build_chain",
    "chain_names",
    "frozen_clock",
    "gc_tree",
    "node_view",
]

# What an honest network may make of a message; ``rejected`` is never one of them.
OK_OUTCOMES = frozenset({"applied", "stale", "duplicate"})


# -- time -----------------------------------------------------------------------------------------


class FrozenClock:
    """The time ``exchange.clock.utcnow()`` returns while patched; moves only on ``tick``."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@contextlib.contextmanager
def frozen_clock(start: datetime) -> Iterator[FrozenClock]:
    """Patch ``exchange.clock``'s ``datetime`` so that ``utcnow()`` reads a ``FrozenClock``.

    Every product timestamp goes through ``exchange.clock.utcnow`` (column default factories
    hold that function itself, so patching the name where it is imported would miss them).
    Keep ``start`` at or before the real time: invitation tokens are JWTs whose ``iat`` PyJWT
    checks against the real clock.
    """
    clock = FrozenClock(start)

    class _FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return clock.now.astimezone(tz) if tz else clock.now.replace(tzinfo=None)

    with mock.patch.object(exchange.clock, "datetime", _FrozenDatetime):
        yield clock


# -- peers and the network ----------------------------------------------------------------------


@functools.cache
def _template_database() -> Path:
    """An empty database with every table, made once per process and copied for each peer."""
    directory = Path(tempfile.mkdtemp(prefix="tix-inproc-template-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        create_tables(engine)
    finally:
        engine.dispose()  # closing the last connection checkpoints and removes the WAL file
    return path


@dataclass
class Peer:
    """One account node: its own database, engine and signing key."""

    name: str
    engine: Engine
    identity: Identity
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def identities(self) -> dict[str, Identity]:
        return {self.identity.account_id: self.identity}

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def ticket(self, number: str) -> Ticket:
        with self.session() as session:
            return session.exec(select(Ticket).where(Ticket.number == number)).one()

    def ticket_for(self, delegation_id: str) -> str:
        """The number of the ticket this peer made from an offer it received."""
        with self.session() as session:
            row = session.exec(
                select(Ticket).where(Ticket.upstream_delegation_id == delegation_id)
            ).one()
            return row.number

    def rejected(self) -> list[RejectedInbound]:
        with self.session() as session:
            return list(session.exec(select(RejectedInbound)).all())

    def pending(self) -> int:
        with self.session() as session:
            rows = session.exec(
                select(OutboxMessage.id).where(OutboxMessage.state == "pending")
            ).all()
            return len(rows)


@dataclass
class InFlight:
    """One envelope on the wire: its signed bytes and the metadata a test selects it by."""

    message_id: str
    type: str
    sender: str
    to: str
    subject: str
    seq: int
    data: bytes
    duplicated: bool = False


@dataclass(frozen=True)
class Delivered:
    """One delivery and what the recipient made of it."""

    message: InFlight
    outcome: str
    reason: str


class Net:
    """Several peers and the envelopes travelling between them; nothing moves unless told.

    ``backend`` ("sqlite" or "postgresql", a test's ``db_backend``) is where the peers'
    databases live: SQLite files in ``directory``, or throw-away PostgreSQL databases dropped
    after ``close``.
    """

    def __init__(self, directory: Path, backend: str) -> None:
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unknown backend {backend!r}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.backend = backend
        self.urls: dict[str, str] = {}
        self._databases = contextlib.ExitStack()
        self.peers: dict[str, Peer] = {}
        self.network: list[InFlight] = []
        self.deliveries: list[Delivered] = []
        self.labels: dict[str, str] = {}

    def __enter__(self) -> Net:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for peer in self.peers.values():
            peer.engine.dispose()
        self._databases.close()

    def _database(self, name: str, copy_of: str = "") -> str:
        """A new database for peer ``name``: empty (every table) or a copy of ``copy_of``'s."""
        if self.backend == "postgresql":
            url = self._databases.enter_context(
                postgres_database("tix_peer", tables=True, copy_of=copy_of)
            )
        else:
            path = self.directory / f"{name}.db"
            source = make_url(copy_of).database if copy_of else None
            shutil.copyfile(source or _template_database(), path)
            url = f"sqlite:///{path}"
        self.urls[name] = url
        return url

    def fork(self, directory: Path) -> Net:
        """A copy of this federation in ``directory``: the same peers with the same keys and a
        copy of each database, the same envelopes in flight, the same history of deliveries.

        Building a chain costs far more than copying one, and two forks of one chain start from
        exactly the same state (ids and timestamps included), so their outcomes compare.
        """
        forked = Net(directory, self.backend)
        forked.labels.update(self.labels)
        for name, peer in self.peers.items():
            # Nobody may be connected to a database PostgreSQL copies; for SQLite the last
            # connection closing checkpoints the WAL into the file.
            peer.engine.dispose()
            forked.peers[name] = Peer(
                name=name,
                engine=make_engine(forked._database(name, copy_of=self.urls[name])),
                identity=peer.identity,
                labels=forked.labels,
            )
        forked.network = [replace(message) for message in self.network]
        forked.deliveries = list(self.deliveries)
        return forked

    def add_peer(self, name: str, label: str = "") -> Peer:
        if name in self.peers:
            raise ValueError(f"{name} is already a peer")
        peer = Peer(
            name=name,
            engine=make_engine(self._database(name)),
            identity=Identity(account_id=name, label=label or name.upper(), key=generate_key()),
            labels=self.labels,
        )
        self.peers[name] = peer
        return peer

    # -- moving envelopes ----------------------------------------------------------------------

    def collect(self, *names: str) -> list[InFlight]:
        """Move every pending outbox row of every peer (or of ``names``) into the network, in
        outbox order."""
        collected: list[InFlight] = []
        for peer in [self.peers[name] for name in names] or list(self.peers.values()):
            with peer.session() as session:
                rows = session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.state == "pending")
                    .order_by(col(OutboxMessage.id))
                ).all()
                for row in rows:
                    envelope = json.loads(row.body)
                    collected.append(
                        InFlight(
                            message_id=row.message_id,
                            type=row.type,
                            sender=row.account_id,
                            to=row.to_account,
                            subject=row.subject,
                            seq=int(envelope["seq"]),
                            data=bytes(row.body),
                        )
                    )
                    row.state = "sent"
                    row.sent_at = exchange.clock.utcnow()
                    session.add(row)
                session.commit()
        self.network.extend(collected)
        return collected

    def deliver(self, i: int, *, duplicate: bool = False, collect: bool = True) -> Delivered:
        """Apply in-flight message ``i`` at its recipient (keeping a copy in flight if
        ``duplicate``), then collect whatever that caused (unless ``collect`` is false: it
        stays in the recipient's outbox, pending, for a later ``collect``)."""
        if duplicate:
            message = self.network[i]
            message.duplicated = True
        else:
            message = self.network.pop(i)
        peer = self.peers[message.to]
        received = inbox.receive(message.data, engine=peer.engine, identities=peer.identities)
        delivered = Delivered(message=message, outcome=received.outcome, reason=received.reason)
        self.deliveries.append(delivered)
        if collect:
            self.collect(message.to)  # only the recipient's outbox can have changed
        return delivered

    def drain_fifo(self, limit: int = 10_000) -> int:
        """Collect, then deliver the oldest in-flight message until none is left."""
        self.collect()
        count = 0
        while self.network:
            if count >= limit:
                raise AssertionError(f"the network did not drain within {limit} deliveries")
            self.deliver(0)
            count += 1
        return count

    def index(self, **match: Any) -> int:
        """The position of the only in-flight message whose fields equal ``match``."""
        found = [
            i
            for i, message in enumerate(self.network)
            if all(getattr(message, key) == value for key, value in match.items())
        ]
        if len(found) != 1:
            raise LookupError(f"{len(found)} in-flight messages match {match}")
        return found[0]

    def rejected(self) -> dict[str, list[RejectedInbound]]:
        """Every peer's recorded rejections (only peers that have some)."""
        return {name: rows for name, peer in self.peers.items() if (rows := peer.rejected())}

    # -- operations, each in its own committed session, like a request ----------------------

    def link(self, upstream: str, downstream: str, contract: Contract | None = None) -> str:
        """Link ``upstream`` → ``downstream`` by invitation and deliver the ``link.accept``."""
        up, down = self.peers[upstream], self.peers[downstream]
        with up.session() as session:
            _invitation, token = link_service.create_invitation(
                session=session,
                identity=up.identity,
                invitation_in=InvitationCreate(contract=contract or Contract()),
            )
            session.commit()
        with down.session() as session:
            link = link_service.accept_invitation(
                session=session, identity=down.identity, token=token
            )
            session.commit()
            link_id = link.id
        self.collect(downstream)
        delivered = self.deliver(self.index(type="link.accept", subject=link_id))
        if delivered.outcome != "applied":
            raise AssertionError(f"link.accept {upstream}>{downstream}: {delivered}")
        return link_id

    def open_ticket(self, name: str, title: str = "Boiler out of order") -> str:
        peer = self.peers[name]
        with peer.session() as session:
            ticket = ticket_service.create(
                session=session,
                account_id=peer.identity.account_id,
                ticket_in=TicketCreate(title=title),
            )
            session.commit()
            return ticket.number

    def delegate(self, upstream: str, number: str, downstream: str) -> str:
        """Offer ``upstream``'s ticket to ``downstream``; the offer is collected, not delivered."""
        peer = self.peers[upstream]
        with peer.session() as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            delegation = delegation_service.delegate(
                session=session,
                identity=peer.identity,
                ticket=ticket,
                delegation_in=DelegationCreate(partner=downstream),
                actor="dispatcher",
            )
            session.commit()
            delegation_id = delegation.delegation_id
        self.labels[delegation_id] = f"{upstream}>{downstream}"
        self.collect(upstream)
        return delegation_id

    def accept(self, name: str, number: str) -> None:
        peer = self.peers[name]
        with peer.session() as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            delegation_service.accept(
                session=session, identity=peer.identity, ticket=ticket, actor="dispatcher"
            )
            session.commit()
        self.collect(name)

    def set_status(self, name: str, number: str, target: str, note: str = "") -> None:
        """``delegation_service.change_status`` as the status endpoint calls it."""
        peer = self.peers[name]
        with peer.session() as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            delegation_service.change_status(
                session=session,
                identity=peer.identity,
                ticket=ticket,
                target=target,
                note=note,
                actor="technician",
            )
            session.commit()
        self.collect(name)


# -- chains ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainShape:
    """``depth`` delegation levels below the GC; ``split`` is the level (0 = the GC) whose
    node also delegates to a second subcontractor, a leaf, or ``None``. With
    ``pending_accept`` the leaves receive their offers but do not accept them yet."""

    depth: int
    split: int | None = None
    pending_accept: bool = False


@dataclass
class Chain:
    """A built chain: its peers by level, each one's ticket number, each one's upstream."""

    shape: ChainShape
    members: list[str]  # the GC first, then by level
    levels: dict[str, int]
    numbers: dict[str, str]
    upstream_of: dict[str, str]
    delegations: dict[str, str]  # downstream name -> delegation id

    @property
    def gc(self) -> str:
        return self.members[0]


def chain_names(shape: ChainShape) -> list[tuple[str, int, str | None]]:
    """``(name, level, upstream)`` for every member of a chain of this shape, the GC first."""
    names: list[tuple[str, int, str | None]] = [("gc", 0, None)]
    for level in range(1, shape.depth + 1):
        names.append((f"l{level}", level, names[level - 1][0]))
    if shape.split is not None:
        if not 0 <= shape.split < shape.depth:
            raise ValueError(f"split level {shape.split} is not above the deepest level")
        names.append((f"l{shape.split + 1}b", shape.split + 1, names[shape.split][0]))
    return names


def build_chain(
    net: Net, shape: ChainShape, clock: FrozenClock | None = None, contract: Contract | None = None
) -> Chain:
    """Link the peers, open the GC's ticket and delegate/accept it level by level.

    Every message of the set-up is delivered in order (``drain_fifo``) before the next step, so
    the chain exists, accepted at every level (but the leaves with ``pending_accept``), before a
    test starts its own traffic.
    """

    def step() -> None:
        if clock is not None:
            clock.tick()

    spec = chain_names(shape)
    for name, _level, _up in spec:
        net.add_peer(name)
    for name, _level, up in spec:
        if up is not None:
            step()
            net.link(up, name, contract)
    net.drain_fifo()
    step()
    numbers = {"gc": net.open_ticket("gc")}
    delegations: dict[str, str] = {}
    for level in range(shape.depth + 1):
        for name, at, up in spec:
            if at != level or up is None:
                continue
            step()
            delegations[name] = net.delegate(up, numbers[up], name)
            net.drain_fifo()
            numbers[name] = net.peers[name].ticket_for(delegations[name])
            leaf = not any(other_up == name for _n, _l, other_up in spec)
            if leaf and shape.pending_accept:
                continue
            step()
            net.accept(name, numbers[name])
            net.drain_fifo()
    return Chain(
        shape=shape,
        members=[name for name, _level, _up in spec],
        levels={name: level for name, level, _up in spec},
        numbers=numbers,
        upstream_of={name: up for name, _level, up in spec if up is not None},
        delegations=delegations,
    )


# -- what a node shows ------------------------------------------------------------------------


def _labelled(node: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    return node | {
        "id": labels.get(node["id"], node["id"]),
        "delegations": [_labelled(child, labels) for child in node["delegations"]],
    }


def gc_tree(peer: Peer, number: str) -> list[dict[str, Any]]:
    """The chain below ``peer``'s ticket as the API returns it, ids replaced by ``up>down``.

    Nothing is dropped: statuses, states, levels, partners and every timestamp stay, so two
    runs under the same ``frozen_clock`` script can be compared with ``==``.
    """
    with peer.session() as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        nodes = delegation_service.subtree_for(session=session, ticket=ticket)
    return [_labelled(chain.api_node(node), peer.labels) for node in nodes]


def node_view(peer: Peer, number: str) -> dict[str, Any]:
    """What one chain member knows: its ticket's status and resolution time, its incoming
    delegation's state, and the tree below it."""
    with peer.session() as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        incoming = session.exec(
            select(Delegation).where(Delegation.ticket_id == ticket.id, Delegation.role == "in")
        ).first()
    return {
        "status": ticket.status,
        "resolved_at": exchange.clock.instant(ticket.resolved_at) if ticket.resolved_at else None,
        "incoming_state": incoming.state if incoming else None,
        "tree": gc_tree(peer, number),
    }
