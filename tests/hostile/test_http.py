"""Every hostile HTTP case of ``tests.hostile.http_cases`` against a live in-process node.

One node per backend (SQLite, PostgreSQL) for the whole module; each case must answer as
expected, leave the database and the data directory unchanged (unless it stores on purpose and
checked what it stored), and the node must serve a normal request right after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.hostile.http_cases import CASES, Case, check
from tests.hostile.world import World, world
from tests.support.db import database_url

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory, db_backend: str) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("hostile")
    with database_url(db_backend, directory, tables=True) as url:
        async with world(url, directory / "node") as w:
            yield w


@pytest.mark.parametrize("hostile", CASES, ids=[c.id for c in CASES])
async def test_hostile_request(node: World, hostile: Case) -> None:
    verdict = await check(node, hostile)
    assert verdict.got.startswith("ok:"), f"{hostile.expected}: got {verdict.got}"
    assert verdict.unchanged, "the request changed the database or the data directory"
    assert verdict.serving, "the node did not serve a normal request afterwards"
