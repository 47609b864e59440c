"""The ticket list loads a page's delegations and unsent messages at once (no query per ticket).

Same output as building each ticket on its own (SLA clocks, squeeze, delivery of unsent
messages), and the number of SQL statements does not grow with the number of tickets shown.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from account.links.models import Contract
from account.messaging.models import OutboxMessage
from account.tickets import page
from account.tickets import service as ticket_service
from account.tickets.models import Ticket
from account.tickets.views import ticket_public
from tests.support.inproc import FrozenClock, Net, Peer, frozen_clock

ADMIN: Any = SimpleNamespace(role="admin")


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
    with frozen_clock(start) as frozen:
        yield frozen


def _sla(response: int, resolution: int) -> dict[str, Any]:
    targets = {"response_minutes": response, "resolution_minutes": resolution}
    return {"targets": {"normal": targets}}


def _page(peer: Peer, *, batched: bool) -> tuple[list[dict[str, Any]], int]:
    """Every ticket of ``peer`` as the list shows it, and the statements it took."""
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    with peer.session() as session:
        tickets = list(session.exec(select(Ticket).order_by(Ticket.id)).all())  # type: ignore[arg-type]
        event.listen(peer.engine, "before_cursor_execute", count)
        try:
            facts = page.load(session, peer.identity.account_id, tickets) if batched else None
            shown = [ticket_public(session, t, ADMIN, facts) for t in tickets]
        finally:
            event.remove(peer.engine, "before_cursor_execute", count)
    return shown, statements


def test_a_batched_page_shows_the_same_as_ticket_by_ticket_in_a_fixed_number_of_queries(
    tmp_path: Path, clock: FrozenClock, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        for name in ("gc", "l1", "l2", "l2b"):
            net.add_peer(name)
        # l1's deadline is tighter than what it gives l2: a squeeze on l1's outgoing delegation.
        for (up, down), sla in zip(
            (("gc", "l1"), ("l1", "l2"), ("l1", "l2b")),
            (_sla(30, 60), _sla(30, 600), _sla(30, 120)),
            strict=True,
        ):
            clock.tick()
            net.link(up, down, Contract(sla=sla))
        net.drain_fifo()
        for i in range(4):
            clock.tick()
            number = net.open_ticket("gc", title=f"Ticket {i}")
            offer = net.delegate("gc", number, "l1")
            net.drain_fifo()
            l1_number = net.peers["l1"].ticket_for(offer)
            net.accept("l1", l1_number)
            for down in ("l2", "l2b")[: 1 + i % 2]:
                net.delegate("l1", l1_number, down)
            net.drain_fifo()
        # An offer that has not left yet: the list shows it as pending delivery, with its error.
        net.delegate("gc", net.open_ticket("gc", title="Not yet sent"), "l1")
        with net.peers["gc"].session() as session:
            last = session.exec(
                select(OutboxMessage).order_by(col(OutboxMessage.id).desc())
            ).first()
            assert last is not None
            last.state, last.last_error = "pending", "unroutable"
            session.add(last)
            session.commit()

        for name in ("gc", "l1", "l2"):
            one_by_one, per_ticket = _page(net.peers[name], batched=False)
            batched, at_once = _page(net.peers[name], batched=True)
            assert batched == one_by_one
            assert at_once <= 2 < per_ticket
        gc_rows, _ = _page(net.peers["gc"], batched=True)
        assert [d["delivery"] for t in gc_rows for d in t["delegations"]][-1] == {
            "pending": 1,
            "failed": 0,
            "last_error": "unroutable",
        }
        l1_rows, _ = _page(net.peers["l1"], batched=True)
        assert any(d["sla"]["squeeze"] for t in l1_rows for d in t["delegations"])
        assert {len(t["delegations"]) for t in l1_rows} == {1, 2}
        assert list(itertools.chain.from_iterable(t["sla"]["delegations"] for t in l1_rows))

        # The partner filter: the tickets l1 delegated to l2b (every second one), newest first.
        l1 = net.peers["l1"]
        with l1.session() as session:
            to_l2b, total = ticket_service.list_visible(
                session=session,
                account_id=l1.identity.account_id,
                user=ADMIN,
                partner=net.peers["l2b"].identity.account_id,
            )
            nobody, none = ticket_service.list_visible(
                session=session, account_id=l1.identity.account_id, user=ADMIN, partner="nobody"
            )
        expected = [t["number"] for t in l1_rows if len(t["delegations"]) == 2][::-1]
        assert ([t.number for t in to_l2b], total) == (expected, 2)
        assert (nobody, none) == ([], 0)
