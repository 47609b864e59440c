"""The chain picture of a real four-level chain, as the GC's page polls it.

The chain is built by the in-process federation (``tests.support.inproc``: every message signed,
carried and applied as on the wire), and the GC's web UI renders the fragment its page polls.
A roll-up from the deepest level changes the fragment; what a link does not disclose never
appears in it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from account.app import create_app
from account.config import Settings
from account.context import NodeContext
from account.db import session_scope
from account.delegations import service as delegation_service
from account.links.models import Contract
from account.tickets.models import Ticket
from account.users import service as user_service
from account.users.models import UserCreate
from tests.support.inproc import ChainShape, Net, Peer, build_chain

PASSWORD = "password-123"
NODE = re.compile(
    r'<g class="node[^"]*" data-level="(\d+)" data-state="([^"]*)" data-status="([^"]*)"'
)


def boxes(svg: str) -> list[tuple[int, str, str]]:
    return [(int(level), state, status) for level, state, status in NODE.findall(svg)]


def titles(svg: str) -> list[str]:
    return re.findall(r'<text x="10" y="20" class="t1">([^<]*)</text>', svg)


@contextlib.asynccontextmanager
async def gc_client(peer: Peer, workdir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The GC's web UI, logged in as a dispatcher."""
    with session_scope(peer.engine) as session:
        user_service.create(
            session=session,
            user_in=UserCreate(username="disp", password=PASSWORD, role="dispatcher"),
        )
    ctx = NodeContext(
        settings=Settings(account_id=peer.identity.account_id, data_dir=workdir),
        engine=peer.engine,
        identity=peer.identity,
        secret=b"c" * 48,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://gc.test") as client:
        form = await client.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        response = await client.post(
            "/ui/login", data={"username": "disp", "password": PASSWORD, "csrf": token.group(1)}
        )
        assert response.status_code == 303
        yield client


@pytest.fixture
async def named(
    tmp_path: Path, db_backend: str
) -> AsyncIterator[tuple[Net, dict[str, str], httpx.AsyncClient]]:
    with Net(tmp_path / "net", db_backend) as net:
        chain = build_chain(net, ChainShape(depth=3, split=1))
        async with gc_client(net.peers["gc"], tmp_path) as client:
            yield net, chain.numbers, client


async def test_the_gc_sees_every_level_and_the_picture_changes_when_the_leaf_resolves(
    named: tuple[Net, dict[str, str], httpx.AsyncClient],
) -> None:
    net, numbers, client = named
    url = f"/ui/tickets/{numbers['gc']}/chain"
    before = (await client.get(url)).text
    assert before.startswith("<svg")
    # Levels that delegated on are in progress; the leaves have accepted and not started.
    assert sorted(boxes(before)) == [
        (0, "", "in_progress"),
        (1, "in_progress", "in_progress"),
        (2, "accepted", "open"),
        (2, "in_progress", "in_progress"),
        (3, "accepted", "open"),
    ]
    assert titles(before)[0] == "GC" and set(titles(before)[1:]) == {"L1", "L2", "L2B", "L3"}
    version = re.search(r'data-version="([^"]*)"', before)
    assert version is not None

    leaf = net.peers["l3"]
    with leaf.session() as session:
        ticket = session.get(Ticket, leaf.ticket(numbers["l3"]).id)
        assert ticket is not None
        for target in ("in_progress", "resolved"):
            delegation_service.change_status(
                session=session,
                identity=leaf.identity,
                ticket=ticket,
                target=target,
                note="",
                actor="eng",
            )
        session.commit()
    net.drain_fifo()

    after = (await client.get(url)).text
    assert (3, "resolved", "resolved") in boxes(after)
    assert (3, "accepted", "open") not in boxes(after)
    changed = re.search(r'data-version="([^"]*)"', after)
    assert changed is not None and changed.group(1) != version.group(1)
    page = (await client.get(f"/ui/tickets/{numbers['gc']}")).text
    assert f'data-poll="/ui/tickets/{numbers["gc"]}/chain"' in page


async def test_what_a_link_does_not_disclose_never_reaches_the_picture(
    tmp_path: Path, db_backend: str
) -> None:
    with Net(tmp_path / "net", db_backend) as net:
        chain = build_chain(
            net, ChainShape(depth=3), contract=Contract(disclose_subcontractors="anonymous")
        )
        async with gc_client(net.peers["gc"], tmp_path) as client:
            svg = (await client.get(f"/ui/tickets/{chain.numbers['gc']}/chain")).text
    assert sorted(titles(svg)) == ["GC", "L1", "subcontractor, level 2", "subcontractor, level 3"]
    assert "L2" not in titles(svg) and "l2" not in svg and "l3" not in svg

    with Net(tmp_path / "hidden", db_backend) as net:
        chain = build_chain(
            net, ChainShape(depth=3), contract=Contract(disclose_subcontractors="hidden")
        )
        async with gc_client(net.peers["gc"], tmp_path / "h") as client:
            svg = (await client.get(f"/ui/tickets/{chain.numbers['gc']}/chain")).text
    assert titles(svg) == ["GC", "L1"]
