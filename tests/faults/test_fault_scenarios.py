"""The fault suite: each scenario of ``tests.faults.scenarios`` under the oracle.

CI variant (default run): one private broker and one four-level chain of node processes for
the module; every scenario drives ``CI_TICKETS`` new tickets through it while its fault is
injected, then drains and checks every node's database: nothing lost, nothing applied twice,
every ticket closed and confirmed at every level, no unexpected rejection, no stuck outbox row.

Long variant (``-m slow``): each scenario on a fresh chain with 500 tickets and the long
faults (60 s broker outage, the default 5-minute skew window), like ``tix chaos``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.chain import Chain
from tests.faults.scenarios import SCENARIOS, Result, build_chain, run, run_fresh
from tests.support.nodes import delete_queues
from tests.support.private_broker import PrivateBroker, free_port, skip_or_fail

pytestmark = pytest.mark.needs_rabbitmq

CI_TICKETS = 8
LONG_TICKETS = 500


@pytest.fixture(scope="module")
def fault_broker() -> Iterator[PrivateBroker]:
    """A private RabbitMQ node for the module (never the machine's broker on 5672)."""
    yield from _private_broker()


def _private_broker() -> Iterator[PrivateBroker]:
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None:
        skip_or_fail("a private RabbitMQ node needs rabbitmq-server and root (to chown its dir)")
    run_dir = Path(tempfile.mkdtemp(prefix="tix-faults-broker-", dir="/tmp"))
    broker = PrivateBroker(
        run_dir, f"tixfs{uuid.uuid4().hex[:8]}@localhost", free_port(), free_port()
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


class Chains:
    """The module's shared chain, built on first use and rebuilt after a failed scenario.

    A scenario that fails may leave a node down, a link half rekeyed or an outbox stuck; the
    scenarios after it would then fail for its reason, so a failure discards the chain.
    """

    def __init__(self, broker: PrivateBroker, backend: str) -> None:
        self.broker = broker
        self.backend = backend
        self._chain: Chain | None = None
        self._workdir: Path | None = None

    def get(self) -> Chain:
        if self._chain is None:
            workdir = Path(tempfile.mkdtemp(prefix="tix-faults-chain-", dir="/tmp"))
            workdir.chmod(0o755)
            self._workdir = workdir
            self._chain = build_chain(self.broker, workdir, backend=self.backend)
        return self._chain

    def discard(self) -> None:
        chain, workdir = self._chain, self._workdir
        self._chain = self._workdir = None
        if chain is not None:
            chain.close()
            delete_queues(self.broker.url, [n.account_id for n in chain.nodes])
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def fault_chains(fault_broker: PrivateBroker, db_backend: str) -> Iterator[Chains]:
    chains = Chains(fault_broker, db_backend)
    try:
        yield chains
    finally:
        chains.discard()


def _assert_passed(result: Result, chain_logs: str = "") -> None:
    verdict = result.verdict
    print(
        f"{result.scenario}: {result.injected} faults, {verdict.tickets} tickets,"
        f" {verdict.messages} messages ({verdict.superseded} superseded before they left),"
        f" lost {len(verdict.lost)}, duplicated"
        f" {len(verdict.duplicated)}, transport duplicates {verdict.transport_duplicates},"
        f" converged {result.converge_seconds:.1f} s after heal; {' '.join(result.notes)}"
    )
    assert result.injected > 0, "the fault did not fire"
    assert verdict.ok, verdict.summary() + chain_logs
    assert verdict.tickets == result.tickets
    scenario = SCENARIOS[result.scenario]
    if scenario.needs_transport_duplicates:
        assert verdict.transport_duplicates > 0, "no duplicate reached an inbox"
    if scenario.expected_reasons:
        assert verdict.expected_rejections > 0, "nothing was refused"
    assert result.ok


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_loses_and_doubles_nothing(name: str, fault_chains: Chains) -> None:
    try:
        result = run(SCENARIOS[name], fault_chains.get(), tickets=CI_TICKETS)
        _assert_passed(result)
    except BaseException:
        fault_chains.discard()
        raise


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_long_scenario_with_500_tickets(name: str, tmp_path: Path) -> None:
    """Deselected from a plain run (tests/conftest.py); ``-m slow`` or ``tix chaos`` runs it."""
    tmp_path.chmod(0o755)
    for fault_broker in _private_broker():
        result = run_fresh(
            SCENARIOS[name], fault_broker, tmp_path / "chain", tickets=LONG_TICKETS, long=True
        )
        _assert_passed(result)
