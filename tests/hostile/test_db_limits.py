"""Text that reaches a column from a partner's message fits it on PostgreSQL too.

A partner's label or an uploader's name travels as short text (up to 500 characters) and was
written as a timeline event's ``actor``, a 200-character column: SQLite stores it, PostgreSQL
refused it at flush, and the inbox retried the message to the delivery limit. Found by the
hostile suite; the timeline now keeps the first 200 characters, and any value the database
refuses while a message applies is a rejection (``not_applicable``), not a retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from sqlmodel import Session, select

from account.messaging import inbox
from account.tickets import service as ticket_service
from account.tickets.models import TicketCreate, TicketEvent
from tests.support.db import node_engine
from tests.support.inproc import ChainShape, Net, build_chain


@pytest.fixture(scope="module")
def engine(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with node_engine(db_backend, tmp_path_factory.mktemp("db")) as eng:
        yield eng


def test_a_500_character_actor_from_the_wire_fits_the_timeline(engine: Engine) -> None:
    label = "Partner \U0001f525 " + "x" * 490
    with Session(engine) as session:
        ticket = ticket_service.create(
            session=session, account_id="acme", ticket_in=TicketCreate(title="t")
        )
        ticket_service.record(session=session, ticket=ticket, kind="partner_status", actor=label)
        session.commit()
        stored = session.exec(
            select(TicketEvent.actor).where(TicketEvent.kind == "partner_status")
        ).one()
    assert stored == label[:200]


def test_a_value_the_database_refuses_is_a_rejection_not_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_backend: str
) -> None:
    """Any ``DataError`` while applying (a column limit nobody checked) rejects the message."""
    with Net(tmp_path, db_backend) as net:
        chain = build_chain(net, ChainShape(depth=1))
        net.set_status("l1", chain.numbers["l1"], "in_progress")
        status = net.index(type="ticket.status", sender="l1")

        def refuse(**_kwargs: object) -> None:
            raise DataError("UPDATE ticket ...", {}, Exception("value too long"))

        with monkeypatch.context() as patch:
            patch.setattr(inbox.delegation_service, "apply", refuse)
            delivered = net.deliver(status, duplicate=True)
        assert (delivered.outcome, delivered.reason) == ("rejected", "not_applicable")
        assert net.peers["gc"].rejected()[0].reason == "not_applicable"
        assert net.deliver(status).outcome == "applied"  # the same bytes, once it can apply
