"""Every hostile envelope of ``tests.hostile.wire_cases`` at one node's inbox, in-process.

Each must come out with its expected outcome and reason, change nothing at the receiver but
one ``rejected_inbound`` row, and leave the inbox applying the next valid message.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.wire_cases import WIRE_CASES, Wire, WireCase, check_wire, wire


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, db_backend: str) -> Iterator[Wire]:
    with wire(tmp_path_factory.mktemp("hostile-wire"), db_backend) as w:
        yield w


@pytest.mark.parametrize("hostile", WIRE_CASES, ids=[c.id for c in WIRE_CASES])
def test_hostile_envelope(federation: Wire, hostile: WireCase) -> None:
    verdict = check_wire(federation, hostile)
    assert verdict.got == hostile.expected
    assert verdict.unchanged, "the receiver changed beyond one rejection record"
    assert verdict.next_applied, "the next valid message was not applied"
