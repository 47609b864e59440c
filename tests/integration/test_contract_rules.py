"""Contract rules a node enforces on its own tickets (in-process federation, real SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from account.errors import Conflict, Invalid
from account.links.models import Contract
from tests.support.inproc import Net


def test_a_partner_may_not_pass_on_a_ticket_whose_contract_forbids_sub_delegation(
    tmp_path: Path,
    db_backend: str,
) -> None:
    with Net(tmp_path, db_backend) as net:
        for name in ("gc", "mid", "leaf", "other"):
            net.add_peer(name)
        net.link("gc", "mid", Contract(allow_subdelegation=False))
        net.link("mid", "leaf")
        net.link("other", "mid")
        net.drain_fifo()

        locked = net.open_ticket("gc", "Locked job")
        locked_id = net.delegate("gc", locked, "mid")
        net.drain_fifo()
        mid_locked = net.peers["mid"].ticket_for(locked_id)
        net.accept("mid", mid_locked)
        net.drain_fifo()
        with pytest.raises(Conflict, match="does not allow sub-delegation"):
            net.delegate("mid", mid_locked, "leaf")

        # The same partner may pass on work from an upstream whose contract allows it.
        free = net.open_ticket("other", "Open job")
        delegation_id = net.delegate("other", free, "mid")
        net.drain_fifo()
        mid_free = net.peers["mid"].ticket_for(delegation_id)
        net.accept("mid", mid_free)
        net.drain_fifo()
        net.delegate("mid", mid_free, "leaf")
        net.drain_fifo()
        assert not any(net.rejected().values())


def test_a_ticket_outside_the_contracts_categories_cannot_be_delegated(
    tmp_path: Path, db_backend: str
) -> None:
    with Net(tmp_path, db_backend) as net:
        net.add_peer("gc")
        net.add_peer("hvac")
        net.link("gc", "hvac", Contract(categories=["hvac"]))
        net.drain_fifo()
        number = net.open_ticket("gc", "Printer jam")
        with pytest.raises(Invalid, match="does not cover this category"):
            net.delegate("gc", number, "hvac")
