"""SQL statements and CPU per applied message, in process, for ``tix bench``'s ticket life.

    .venv/bin/python benchmarks/apply_cost.py --tickets 20
    .venv/bin/python benchmarks/apply_cost.py --tickets 20 --sql       # and each one's statements
    .venv/bin/python benchmarks/apply_cost.py --tickets 20 --json -

Four peers L0 → L1 → L2 → L3 of the in-process federation (``tests/support/inproc``: SQLite
files, the real services and ``account.messaging.inbox.receive``), linked with ``auto_accept``
contracts as ``tix bench`` links its nodes. Each ticket goes the bench's way: L0 creates and
delegates it, L1 and L2 delegate on, L3 resolves, L2 and L1 resolve, L0 confirms and the
confirmation cascades down. Every operation and every delivery is counted: SQL statements
(``before_cursor_execute`` on the peer's engine), session flushes, and the process's CPU time,
grouped by message type (and by role: ``apply`` at the recipient) or by operation.

Every envelope is delivered right after the step that caused it, in order (nothing waits in an
outbox long enough to be superseded, as on an idle node; ``tix bench`` measures the busy case).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import col, select

from account.delegations import service as delegation_service
from account.delegations.models import Delegation
from account.links.models import Contract
from account.messaging.models import OutboxMessage
from account.tickets.models import Ticket
from tests.support.inproc import Net

LEVELS = ("l0", "l1", "l2", "l3")


class Counter:
    """Statements, flushes and CPU seconds, attributed to the label that is current."""

    def __init__(self) -> None:
        self.label = ""
        self.statements: dict[str, int] = defaultdict(int)
        self.flushes: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.sql: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def statement(self, _conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        if self.label:
            self.statements[self.label] += 1
            self.sql[self.label][" ".join(sql.split())[:90]] += 1

    def flush(self, *_args: Any) -> None:
        if self.label:
            self.flushes[self.label] += 1

    @contextlib.contextmanager
    def on(self, label: str) -> Iterator[None]:
        outer = self.label
        self.label = label
        started = time.process_time()
        try:
            yield
        finally:
            if label:
                self.cpu[label] += time.process_time() - started
                self.calls[label] += 1
            else:  # a harness step inside a counted one: not part of its cost
                self.cpu[outer] -= time.process_time() - started
            self.label = outer

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "what": label,
                "count": calls,
                "statements_each": round(self.statements[label] / calls, 1),
                "flushes_each": round(self.flushes[label] / calls, 1),
                "cpu_ms_each": round(1000 * self.cpu[label] / calls, 2),
            }
            for label, calls in sorted(self.calls.items())
        ]


def _instrument(net: Net, counter: Counter) -> None:
    """Count every statement of every peer and every flush, and label deliveries by type."""
    for peer in net.peers.values():
        event.listen(peer.engine, "before_cursor_execute", counter.statement)
    event.listen(OrmSession, "after_flush", counter.flush)
    deliver = net.deliver

    def labelled(i: int, *, duplicate: bool = False) -> Any:
        message = net.network[i]
        with counter.on(f"apply {message.type} at {message.to}"):
            return deliver(i, duplicate=duplicate)

    net.deliver = labelled  # type: ignore[method-assign]
    collect = net.collect

    def harness(*names: str) -> Any:  # the relay's part (read and mark sent): not counted
        with counter.on(""):
            return collect(*names)

    net.collect = harness  # type: ignore[method-assign]


def _outgoing_state(net: Net, name: str, number: str) -> str:
    with net.peers[name].session() as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        (row,) = session.exec(
            select(Delegation).where(Delegation.ticket_id == ticket.id, Delegation.role == "out")
        ).all()
        return row.state


def run(tickets: int, directory: Path) -> dict[str, Any]:
    counter = Counter()
    # Net takes the database backend since tests could run on PostgreSQL too.
    backend = ("sqlite",) if "backend" in inspect.signature(Net).parameters else ()
    with Net(directory, *backend) as net:
        for name in LEVELS:
            net.add_peer(name)
        for up, down in itertools.pairwise(LEVELS):
            net.link(up, down, Contract(auto_accept=True))
        net.drain_fifo()
        _instrument(net, counter)

        def settle() -> None:
            net.drain_fifo()

        numbers: dict[str, list[str]] = {name: [] for name in LEVELS}
        for i in range(tickets):
            with counter.on("op create at l0"):
                numbers["l0"].append(net.open_ticket("l0", title=f"Bench {i}"))
            with counter.on("op delegate at l0"):
                delegation_id = net.delegate("l0", numbers["l0"][-1], "l1")
            settle()
            net.drain_fifo()
            numbers["l1"].append(net.peers["l1"].ticket_for(delegation_id))
        for up, down in (("l1", "l2"), ("l2", "l3")):
            for number in numbers[up]:
                with counter.on(f"op delegate at {up}"):
                    delegation_id = net.delegate(up, number, down)
                settle()
            net.drain_fifo()
            numbers[down] = [net.peers[down].ticket_for(d) for d in _offers(net, down)]
        for name in ("l3", "l2", "l1"):
            for number in numbers[name]:
                with counter.on(f"op resolve at {name}"):
                    net.set_status(name, number, "resolved")
                settle()
            net.drain_fifo()
        for number in numbers["l0"]:
            assert _outgoing_state(net, "l0", number) == "resolved"
            with net.peers["l0"].session() as session:
                ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
                (out,) = delegation_service.outgoing(session=session, ticket=ticket)
            with counter.on("op confirm at l0"):
                with net.peers["l0"].session() as session:
                    row = session.get(Delegation, out.id)
                    assert row is not None
                    delegation_service.confirm(
                        session=session,
                        identity=net.peers["l0"].identity,
                        delegation=row,
                        note="",
                        actor="bench",
                    )
                    session.commit()
                net.collect("l0")
            settle()
        net.drain_fifo()
        envelopes = {}
        for name, peer in net.peers.items():
            with peer.session() as session:
                rows = session.exec(select(OutboxMessage.type, OutboxMessage.state)).all()
            envelopes[name] = {
                "sent": sum(1 for _t, state in rows if state == "sent"),
                "superseded": sum(1 for _t, state in rows if state == "superseded"),
            }
    sent = sum(e["sent"] for e in envelopes.values())
    # Roll-ups that went at link time are not part of the tickets' traffic.
    return {
        "tickets": tickets,
        "envelopes_per_ticket": round((sent - 3) / tickets, 2),
        "outbox": envelopes,
        "rows": counter.table(),
        "sql": {label: dict(sql) for label, sql in counter.sql.items()},
    }


def _offers(net: Net, name: str) -> list[str]:
    with net.peers[name].session() as session:
        rows = session.exec(
            select(Delegation.delegation_id)
            .where(Delegation.role == "in")
            .order_by(col(Delegation.id))
        ).all()
    return list(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON (- = stdout)")
    parser.add_argument("--sql", action="store_true", help="print each label's statements")
    args = parser.parse_args()
    if not 1 <= args.tickets <= 2000:
        parser.error("--tickets must be 1..2000")
    with tempfile.TemporaryDirectory(prefix="tix-apply-cost-") as tmp:
        result = run(args.tickets, Path(tmp))
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
        return
    print(f"envelopes per ticket: {result['envelopes_per_ticket']}  outbox: {result['outbox']}")
    print(f"{'what':42} {'count':>6} {'stmts':>6} {'flush':>6} {'cpu ms':>7}")
    for row in result["rows"]:
        print(
            f"{row['what']:42} {row['count']:>6} {row['statements_each']:>6}"
            f" {row['flushes_each']:>6} {row['cpu_ms_each']:>7}"
        )
    if args.sql:
        for label, sql in result["sql"].items():
            print(f"\n== {label}")
            for text, n in sorted(sql.items(), key=lambda kv: -kv[1]):
                print(f"  {n:6} {text}")


if __name__ == "__main__":
    main()
