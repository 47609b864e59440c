"""A ticket's own timeline events sit at the ticket's level of the chain, wherever it is."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from account.tickets.models import Ticket, TicketEvent
from tests.support.inproc import ChainShape, Net, build_chain


def test_a_received_tickets_own_status_events_are_at_its_level(
    tmp_path: Path, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        chain = build_chain(net, ChainShape(depth=2))
        net.set_status("l2", chain.numbers["l2"], "in_progress")
        net.drain_fifo()
        for name in ("l1", "l2"):
            peer = net.peers[name]
            with peer.session() as session:
                ticket = session.exec(
                    select(Ticket).where(Ticket.number == chain.numbers[name])
                ).one()
                levels = {
                    (e.kind, e.level)
                    for e in session.exec(
                        select(TicketEvent).where(
                            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "status"
                        )
                    ).all()
                }
            assert levels and all(level == chain.levels[name] for _, level in levels), levels
