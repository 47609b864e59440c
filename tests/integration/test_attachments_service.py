"""Attachments along a three-node chain (acme → northwind → southwind), on SQLite and PostgreSQL.

Each node has its own database, key and blob store; messages cross only as the signed bytes of
an outbox row fed to ``inbox.receive``. ``ticket.attachment`` is routed to
``attachment_service.apply_attachment`` the way the node will once the lead wires it into
``delegation_service._APPLIERS`` (the ``wired`` fixture patches that one entry).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.attachments import service as attachment_service
from account.attachments.models import Attachment, AttachmentIn
from account.config import Settings
from account.context import Identity
from account.db import session_scope
from account.delegations import service as delegation_service
from account.delegations.models import Delegation, DelegationCreate
from account.errors import Invalid
from account.links import service as link_service
from account.links.models import InvitationCreate, Link, LinkPatch
from account.messaging import inbox, outbox
from account.messaging.models import OutboxMessage, RejectedInbound
from account.tickets import service as ticket_service
from account.tickets.models import Ticket, TicketCreate, TicketEvent
from exchange.clock import instant, utcnow
from exchange.envelopes import open_envelope
from exchange.errors import RejectedMessage
from exchange.signing import generate_key
from schemas import messages as m
from tests.support.db import clear_tables, node_engine

INLINE = 1024
MAX = 64 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2


@dataclass
class Node:
    engine: Engine
    identity: Identity
    settings: Settings
    numbers: dict[str, str] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return self.identity.account_id


@dataclass
class Chain:
    acme: Node
    northwind: Node
    southwind: Node

    @property
    def nodes(self) -> list[Node]:
        return [self.acme, self.northwind, self.southwind]

    def node(self, account_id: str) -> Node:
        return next(n for n in self.nodes if n.account_id == account_id)


@pytest.fixture(scope="module")
def engines(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Engine]]:
    """Three databases of one backend, one per node."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(node_engine(db_backend, tmp_path_factory.mktemp(name)))
            for name in ("acme", "northwind", "southwind")
        ]


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> dict[str, Settings]:
    """Route ``ticket.attachment`` (both roles) to ``apply_attachment`` with the node settings."""
    settings_of: dict[str, Settings] = {}

    def apply(
        session: Session, identity: Identity, d: Delegation, body: Any, _settings: Any = None
    ) -> None:
        # Once wired, the node passes its own settings here; each test node has its own.
        attachment_service.apply_attachment(
            session=session,
            identity=identity,
            delegation=d,
            body=body,
            settings=settings_of[identity.account_id],
        )

    for role in ("in", "out"):
        monkeypatch.setitem(delegation_service._APPLIERS, (role, "ticket.attachment"), apply)
    return settings_of


@pytest.fixture
def chain(engines: list[Engine], tmp_path: Path, wired: dict[str, Settings]) -> Iterator[Chain]:
    """A ticket at acme delegated to northwind and on to southwind, both offers accepted."""
    nodes = []
    for engine, name in zip(engines, ("acme", "northwind", "southwind"), strict=True):
        clear_tables(engine)
        settings = Settings(
            account_id=name,
            data_dir=tmp_path / name,
            attachment_inline_bytes=INLINE,
            attachment_max_bytes=MAX,
            public_url=f"http://{name}.test",
        )
        wired[name] = settings
        nodes.append(Node(engine, Identity(name, name.title(), generate_key()), settings))
    result = Chain(*nodes)
    link(result, result.acme, result.northwind)
    link(result, result.northwind, result.southwind)
    with session_scope(result.acme.engine) as session:
        ticket = ticket_service.create(
            session=session, account_id="acme", ticket_in=TicketCreate(title="Broken ATM")
        )
        result.acme.numbers["t"] = ticket.number
    delegate(result, result.acme, result.northwind)
    delegate(result, result.northwind, result.southwind)
    yield result
    for engine in engines:
        clear_tables(engine)


# -- helpers ---------------------------------------------------------------------------------------


def pump(chain: Chain) -> list[inbox.Received]:
    """Carry pending outbox rows to their recipients until none is left; return the outcomes."""
    outcomes = []
    while True:
        moved = False
        for node in chain.nodes:
            with Session(node.engine, expire_on_commit=False) as session:
                rows = session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.state == "pending")
                    .order_by(col(OutboxMessage.id))
                ).all()
                for row in rows:
                    row.state = "sent"
                    session.add(row)
                session.commit()
            for row in rows:
                target = chain.node(row.to_account)
                outcomes.append(
                    inbox.receive(
                        row.body,
                        engine=target.engine,
                        identities={target.account_id: target.identity},
                    )
                )
                moved = True
        if not moved:
            return outcomes


def link(chain: Chain, up: Node, down: Node) -> None:
    with session_scope(up.engine) as session:
        _, token = link_service.create_invitation(
            session=session,
            identity=up.identity,
            invitation_in=InvitationCreate(),
            api_url=up.settings.public_url,
        )
    with session_scope(down.engine) as session:
        link_service.accept_invitation(
            session=session, identity=down.identity, token=token, api_url=down.settings.public_url
        )
    pump(chain)


def delegate(chain: Chain, up: Node, down: Node) -> None:
    with session_scope(up.engine) as session:
        ticket = ticket_of(session, up)
        delegation_service.delegate(
            session=session,
            identity=up.identity,
            ticket=ticket,
            delegation_in=DelegationCreate(partner=down.account_id),
            actor="disp",
        )
    pump(chain)
    with session_scope(down.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.account_id == down.account_id)).one()
        down.numbers["t"] = ticket.number
        delegation_service.accept(session=session, identity=down.identity, ticket=ticket, actor="x")
    pump(chain)


def ticket_of(session: Session, node: Node) -> Ticket:
    return session.exec(select(Ticket).where(Ticket.number == node.numbers["t"])).one()


def upload(node: Node, data: bytes, *, visibility: str = "partner", name: str = "f.png") -> str:
    """Store ``data`` as a local upload on the node's ticket; return its attachment id."""
    digest = attachment_service.blob_store(node.settings).put(data)
    with session_scope(node.engine) as session:
        row = attachment_service.create(
            session=session,
            identity=node.identity,
            settings=node.settings,
            ticket=ticket_of(session, node),
            attachment_in=AttachmentIn(
                filename=name,
                content_type="image/png",
                size=len(data),
                sha256=digest,
                visibility=visibility,
            ),
            actor="Eve Engineer",
        )
        return row.attachment_id


def attachments(node: Node) -> list[Attachment]:
    with Session(node.engine, expire_on_commit=False) as session:
        return list(session.exec(select(Attachment).order_by(col(Attachment.id))).all())


def pending_attachment_messages(node: Node) -> list[tuple[str, m.TicketAttachment]]:
    """(recipient, body) of the node's pending ``ticket.attachment`` messages."""
    with Session(node.engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.state == "pending", OutboxMessage.type == "ticket.attachment"
            )
        ).all()
    out = []
    for row in rows:
        body = open_envelope(row.body).body
        assert isinstance(body, m.TicketAttachment)
        out.append((row.to_account, body))
    return out


def body_for(data: bytes, **overrides: Any) -> m.TicketAttachment:
    fields: dict[str, Any] = {
        "attachment_id": str(uuid.uuid4()),
        "filename": "photo.png",
        "content_type": "image/png",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_b64": base64.b64encode(data).decode(),
        "visibility": "partner",
        "uploaded_by": "Anna",
        "created_at": instant(utcnow()),
    }
    return m.TicketAttachment(**(fields | overrides))


def apply_at(node: Node, body: m.TicketAttachment, *, role: str) -> None:
    """Apply ``body`` at ``node`` as if it came over its ``role`` delegation."""
    with session_scope(node.engine) as session:
        delegation = session.exec(select(Delegation).where(Delegation.role == role)).one()
        attachment_service.apply_attachment(
            session=session,
            identity=node.identity,
            delegation=delegation,
            body=body,
            settings=node.settings,
        )


# -- tests -----------------------------------------------------------------------------------------


def test_links_carry_each_sides_api_url(chain: Chain) -> None:
    with Session(chain.northwind.engine) as session:
        urls = {row.peer_account: row.peer_api_url for row in session.exec(select(Link)).all()}

    assert urls == {"acme": "http://acme.test", "southwind": "http://southwind.test"}


def test_small_attachment_travels_inline_down_the_chain_and_back_up(chain: Chain) -> None:
    upload(chain.acme, PNG, name="meter.png")
    [(to, body)] = pending_attachment_messages(chain.acme)
    assert to == "northwind" and body.content_b64 is not None and body.size == len(PNG)

    outcomes = pump(chain)

    assert {o.outcome for o in outcomes} == {"applied"}
    for node in (chain.northwind, chain.southwind):
        [row] = attachments(node)
        assert row.stored and row.filename == "meter.png" and row.sha256 == body.sha256
        assert (
            row.uploaded_by == f"Eve Engineer ({chain.acme.identity.label})"
            and row.source_account != node.account_id
        )
        assert attachment_service.blob_store(node.settings).read(row.sha256) == PNG
    with Session(chain.southwind.engine) as session:
        events = session.exec(select(TicketEvent).where(TicketEvent.kind == "attachment")).all()
        assert [e.level for e in events] == [1], "southwind records it as from the level above"

    reply = b"reading: 0042 kWh\n"
    upload(chain.southwind, reply, name="reading.txt")
    pump(chain)
    [_, back] = attachments(chain.acme)
    assert back.stored and back.source_account == "northwind"
    assert attachment_service.blob_store(chain.acme.settings).read(back.sha256) == reply


def test_inline_content_that_does_not_match_its_digest_is_refused(chain: Chain) -> None:
    body = body_for(PNG, sha256=hashlib.sha256(b"other").hexdigest())

    with pytest.raises(RejectedMessage) as refused:
        apply_at(chain.northwind, body, role="in")

    assert refused.value.reason == "not_applicable"
    assert attachments(chain.northwind) == []
    assert not (chain.northwind.settings.data_dir / "blobs" / body.sha256[:2]).exists()


def test_inline_content_of_another_size_or_not_base64_is_refused(chain: Chain) -> None:
    with pytest.raises(RejectedMessage):
        apply_at(chain.northwind, body_for(PNG, size=len(PNG) + 1), role="in")
    with pytest.raises(RejectedMessage):
        apply_at(chain.northwind, body_for(PNG, content_b64="!!not base64!!"), role="in")

    assert attachments(chain.northwind) == []


def test_a_signed_message_whose_content_does_not_match_is_rejected_by_the_inbox(
    chain: Chain,
) -> None:
    with session_scope(chain.acme.engine) as session:
        delegation = session.exec(select(Delegation)).one()
        outbox.enqueue(
            session=session,
            identity=chain.acme.identity,
            to="northwind",
            link_id=delegation.link_id,
            message_type="ticket.attachment",
            subject=delegation.delegation_id,
            seq=outbox.next_seq(session, Delegation, delegation.id),
            body=body_for(PNG, sha256="c" * 64),
        )

    outcomes = pump(chain)

    assert [(o.outcome, o.reason) for o in outcomes] == [("rejected", "not_applicable")]
    assert attachments(chain.northwind) == []
    with Session(chain.northwind.engine) as session:
        assert "digest" in session.exec(select(RejectedInbound)).one().detail


def test_the_same_attachment_twice_is_recorded_and_forwarded_once(chain: Chain) -> None:
    body = body_for(PNG)

    apply_at(chain.northwind, body, role="in")
    apply_at(chain.northwind, body, role="in")

    assert len(attachments(chain.northwind)) == 1
    assert [to for to, _ in pending_attachment_messages(chain.northwind)] == ["southwind"]


def test_fan_out_skips_the_source_and_never_sends_internal_ones(chain: Chain) -> None:
    apply_at(chain.northwind, body_for(PNG), role="out")  # came up from southwind

    assert [to for to, _ in pending_attachment_messages(chain.northwind)] == ["acme"]

    pump(chain)
    upload(chain.northwind, b"internal notes\n", visibility="internal")

    assert pending_attachment_messages(chain.northwind) == []
    assert any(row.visibility == "internal" for row in attachments(chain.northwind))


def test_public_visibility_travels_and_suspended_links_are_skipped(chain: Chain) -> None:
    with session_scope(chain.northwind.engine) as session:
        down = session.exec(select(Link).where(Link.peer_account == "southwind")).one()
        link_service.patch(
            session=session,
            identity=chain.northwind.identity,
            link=down,
            patch_in=LinkPatch(state="suspended"),
        )

    upload(chain.northwind, PNG, visibility="public")

    [(to, body)] = pending_attachment_messages(chain.northwind)
    assert to == "acme" and body.visibility == "public"


def test_large_attachment_is_announced_without_content_and_waits_to_be_fetched(
    chain: Chain,
) -> None:
    big = b"%PDF-1.7\n" + b"x" * (INLINE * 3)
    upload(chain.acme, big, name="manual.pdf")
    [(_, body)] = pending_attachment_messages(chain.acme)
    assert body.content_b64 is None and body.size == len(big)

    pump(chain)

    [row] = attachments(chain.northwind)
    assert not row.stored and row.next_fetch_at is not None and row.source_delegation_id
    [below] = attachments(chain.southwind)
    assert not below.stored and below.source_account == "northwind", "forwarded by digest"
    assert not (chain.northwind.settings.data_dir / "blobs" / body.sha256[:2]).exists()


def test_large_attachment_with_content_already_here_is_stored_at_once(chain: Chain) -> None:
    big = b"y" * (INLINE * 2)
    attachment_service.blob_store(chain.northwind.settings).put(big)

    apply_at(chain.northwind, body_for(big, content_b64=None), role="in")

    [row] = attachments(chain.northwind)
    assert row.stored and row.next_fetch_at is None


def test_attachments_over_the_hard_limit_are_refused_both_ways(chain: Chain) -> None:
    huge = m.TicketAttachment(
        attachment_id=str(uuid.uuid4()),
        filename="huge.bin",
        content_type="application/octet-stream",
        size=MAX + 1,
        sha256="b" * 64,
    )
    with pytest.raises(RejectedMessage) as refused:
        apply_at(chain.northwind, huge, role="in")
    assert refused.value.reason == "too_large"

    digest = attachment_service.blob_store(chain.acme.settings).put(b"z")
    with session_scope(chain.acme.engine) as session, pytest.raises(Invalid):
        attachment_service.create(
            session=session,
            identity=chain.acme.identity,
            settings=chain.acme.settings,
            ticket=ticket_of(session, chain.acme),
            attachment_in=AttachmentIn(
                filename="huge.bin",
                content_type="application/octet-stream",
                size=MAX + 1,
                sha256=digest,
            ),
            actor="x",
        )


def test_existing_attachments_follow_a_new_delegation(chain: Chain) -> None:
    upload(chain.acme, PNG)
    upload(chain.acme, b"secret\n", visibility="internal")
    pump(chain)
    with session_scope(chain.acme.engine) as session:
        delegation = session.exec(select(Delegation)).one()
        sent = attachment_service.send_to_delegation(
            session=session,
            identity=chain.acme.identity,
            settings=chain.acme.settings,
            delegation=delegation,
        )

    assert sent == 1, "only the shareable one"
    outcomes = pump(chain)
    assert len(attachments(chain.northwind)) == 1, "already there: idempotent by id"
    assert {o.outcome for o in outcomes} == {"applied"}
