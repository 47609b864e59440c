"""The oracle of the fault suite: "nothing lost, nothing applied twice" read from every node's DB.

Adapted from RELIABILITY.md ("The oracle"), with the transactional outbox as the send point: a
message exists once its origin committed its outbox row. ``snapshot`` reads one node's SQLite
file; ``check`` compares the snapshots of a chain ``gc → … → leaf``:

* **lost**: an outbox row of one node to another node of the chain whose id is in neither the
  recipient's inbox nor (for an expected reason) its rejected messages. A row the sender marked
  ``superseded`` (a newer envelope of the same stateful type, sender, recipient and subject was
  written while it waited: ``account.messaging.outbox.supersede_pending``) need not arrive, but
  then the recipient must have received one of the same type from that sender about that
  subject with a higher ``seq``: otherwise its state was lost, and it counts as lost;
* **unexpected**: an inbox row whose id no outbox of the chain ever held (superseded rows
  included: the relay may have published one it read before it was superseded);
* **duplicated effects**: an offer that made two tickets, a ticket delegated twice, a timeline
  event (same ticket, kind and detail) recorded twice, an inbox id recorded twice;
* **order**: for every sender and subject, the ``seq`` of the stateful messages applied (in the
  order they were applied) strictly increases: state never moved backwards;
* **convergence**: every ticket of the load reached its final state at every level (closed,
  delegation confirmed on both ends, the GC's roll-up of the whole subtree closed);
* **rejections** other than the expected reasons, and outbox rows neither ``sent`` nor
  ``superseded`` (stuck).

Transport duplicates (messages the inbox dropped as already seen) leave no row, so the caller
passes them in from the nodes' counters; they are reported, never a failure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.faults.chain import read_db

STATEFUL_TYPES = frozenset(
    {
        "delegation.accept",
        "delegation.decline",
        "delegation.recall",
        "ticket.update",
        "ticket.status",
        "resolution.confirm",
        "resolution.rework",
        "rating",
    }
)
# Timeline events that happen once per ticket and delegation in a run without rework.
ONCE_KINDS = frozenset(
    {"created", "status", "delegated", "partner_accepted", "partner_status", "confirmed"}
)


@dataclass
class Snapshot:
    """The rows of one node's database that the oracle reads."""

    account_id: str
    tickets: list[dict[str, Any]]
    delegations: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    inbox: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    events: list[dict[str, Any]]


def last_rejection_ids(chain: Sequence[tuple[str, str]]) -> dict[str, int]:
    """The id of each node's latest rejected message (0 if none)."""
    out = {}
    for account_id, path in chain:
        with read_db(path) as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM rejectedinbound").fetchone()
            out[account_id] = int(row[0])
    return out


def snapshot(account_id: str, path: str) -> Snapshot:
    """Read one node's database (read-only, safe while the node runs)."""
    with read_db(path) as conn:

        def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r) for r in conn.execute(sql)]

        return Snapshot(
            account_id=account_id,
            tickets=rows("SELECT * FROM ticket"),
            delegations=rows("SELECT * FROM delegation"),
            outbox=[
                _with_seq(row)
                for row in rows(
                    "SELECT id, message_id, to_account, type, subject, state, body"
                    " FROM outboxmessage"
                )
            ],
            inbox=rows(
                "SELECT id, message_id, type, from_account, subject, seq, outcome"
                " FROM inboxmessage ORDER BY id"
            ),
            rejected=rows(
                "SELECT id, message_id, from_account, type, reason, detail FROM rejectedinbound"
            ),
            events=rows("SELECT ticket_id, kind, detail FROM ticketevent"),
        )


def _with_seq(row: dict[str, Any]) -> dict[str, Any]:
    """An outbox row with its envelope's ``seq`` instead of the whole signed body."""
    body = row.pop("body")
    return row | {"seq": int(json.loads(bytes(body))["seq"])}


@dataclass
class Verdict:
    """What the oracle found; ``ok`` when every must-be-empty list is empty."""

    tickets: int = 0
    messages: int = 0
    superseded: int = 0  # outbox rows superseded by a newer state before they left
    transport_duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    unconverged: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    expected_rejections: int = 0
    stuck: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.unexpected
            or self.duplicated
            or self.order
            or self.unconverged
            or self.rejections
            or self.stuck
        )

    def summary(self) -> str:
        parts = []
        for name in ("lost", "unexpected", "duplicated", "order", "unconverged", "rejections"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name} ({len(items)}): {items[:5]}")
        if self.stuck:
            parts.append(f"stuck ({len(self.stuck)}): {self.stuck[:5]}")
        return "; ".join(parts) or "ok"


def check(
    chain: Sequence[Snapshot],
    gc_numbers: Iterable[str],
    *,
    transport_duplicates: int = 0,
    expected_reasons: frozenset[str] = frozenset(),
    rejected_before: dict[str, int] | None = None,
) -> Verdict:
    """Run every check of the module docstring over the snapshots of one chain.

    ``rejected_before`` maps an account to the last rejection id it had before this run (a chain
    that carried earlier runs); only later rejections are judged.
    """
    verdict = Verdict(transport_duplicates=transport_duplicates)
    by_account = {s.account_id: s for s in chain}
    _delivery(chain, by_account, verdict, expected_reasons, rejected_before or {})
    _duplicates(chain, verdict)
    _order(chain, verdict)
    numbers = list(gc_numbers)
    verdict.tickets = len(numbers)
    _convergence(chain, numbers, verdict)
    return verdict


def _delivery(
    chain: Sequence[Snapshot],
    by_account: dict[str, Snapshot],
    verdict: Verdict,
    expected_reasons: frozenset[str],
    rejected_before: dict[str, int],
) -> None:
    sent_ids: set[str] = set()
    for node in chain:
        for row in node.outbox:
            recipient = by_account.get(row["to_account"])
            if recipient is None:
                continue
            verdict.messages += 1
            sent_ids.add(row["message_id"])
            if row["state"] == "superseded":
                verdict.superseded += 1
            elif row["state"] != "sent":
                verdict.stuck.append(f"{node.account_id}→{row['to_account']} {row['type']}")
        for row in node.rejected:
            if row["id"] <= rejected_before.get(node.account_id, 0):
                continue
            if row["reason"] in expected_reasons:
                verdict.expected_rejections += 1
            else:
                verdict.rejections.append(
                    f"{node.account_id}: {row['type']} from {row['from_account']}:"
                    f" {row['reason']} {row['detail']}"[:200]
                )
    for node in chain:
        received = {r["message_id"] for r in node.inbox}
        newest: dict[tuple[str, str, str], int] = {}  # (sender, type, subject) -> highest seq
        for r in node.inbox:
            key = (r["from_account"], r["type"], r["subject"])
            newest[key] = max(newest.get(key, 0), int(r["seq"]))
        for sender in chain:
            for row in sender.outbox:
                if row["to_account"] != node.account_id or row["message_id"] in received:
                    continue
                key = (sender.account_id, row["type"], row["subject"])
                if row["state"] == "superseded" and newest.get(key, 0) > int(row["seq"]):
                    continue  # a newer state of the same subject arrived instead
                verdict.lost.append(
                    f"{sender.account_id}→{node.account_id} {row['type']} {row['message_id']}"
                )
        for row in node.inbox:
            if row["from_account"] in by_account and row["message_id"] not in sent_ids:
                verdict.unexpected.append(f"{node.account_id} {row['type']} {row['message_id']}")


def _duplicates(chain: Sequence[Snapshot], verdict: Verdict) -> None:
    for node in chain:
        name = node.account_id
        for message_id, count in Counter(r["message_id"] for r in node.inbox).items():
            if count > 1:
                verdict.duplicated.append(f"{name}: inbox {message_id} x{count}")
        offers = Counter(
            t["upstream_delegation_id"] for t in node.tickets if t["upstream_delegation_id"]
        )
        for delegation_id, count in offers.items():
            if count > 1:
                verdict.duplicated.append(f"{name}: offer {delegation_id} made {count} tickets")
        outs = Counter(d["ticket_id"] for d in node.delegations if d["role"] == "out")
        for ticket_id, count in outs.items():
            if count > 1:
                verdict.duplicated.append(f"{name}: ticket {ticket_id} delegated {count} times")
        events = Counter(
            (e["ticket_id"], e["kind"], _canonical(e["detail"]))
            for e in node.events
            if e["kind"] in ONCE_KINDS
        )
        for (ticket_id, kind, detail), count in events.items():
            if count > 1:
                verdict.duplicated.append(
                    f"{name}: ticket {ticket_id} event {kind} {detail} x{count}"[:200]
                )


def _canonical(detail: Any) -> str:
    value = json.loads(detail) if isinstance(detail, str) else detail
    return json.dumps(value, sort_keys=True)


def _order(chain: Sequence[Snapshot], verdict: Verdict) -> None:
    for node in chain:
        last: dict[tuple[str, str], int] = {}
        for row in node.inbox:  # in the order they were applied
            if row["type"] not in STATEFUL_TYPES or row["outcome"] != "applied":
                continue
            key = (row["from_account"], row["subject"])
            if row["seq"] <= last.get(key, 0):
                verdict.order.append(
                    f"{node.account_id}: {row['type']} seq {row['seq']} after {last[key]}"
                )
            last[key] = row["seq"]


def _convergence(chain: Sequence[Snapshot], numbers: list[str], verdict: Verdict) -> None:
    tickets = [{t["number"]: t for t in node.tickets} for node in chain]
    by_upstream = [{t["upstream_delegation_id"]: t for t in node.tickets} for node in chain]
    delegations = [{(d["delegation_id"], d["role"]): d for d in node.delegations} for node in chain]
    outs = [{d["ticket_id"]: d for d in node.delegations if d["role"] == "out"} for node in chain]
    leaf = len(chain) - 1
    for number in numbers:
        ticket = tickets[0].get(number)
        problems: list[str] = []
        for level in range(len(chain)):
            if ticket is None:
                problems.append(f"no ticket at level {level}")
                break
            expected = "resolved" if level == 0 else "closed"
            if ticket["status"] != expected:
                problems.append(f"level {level} {ticket['status']}")
            if level > 0:
                mine = delegations[level].get((ticket["upstream_delegation_id"], "in"))
                theirs = delegations[level - 1].get((ticket["upstream_delegation_id"], "out"))
                for end, row in (("in", mine), ("out", theirs)):
                    if row is None or row["state"] != "confirmed":
                        state = row["state"] if row else None
                        problems.append(f"level {level} delegation ({end}) {state}")
                if theirs is not None and theirs["remote_status"] != "closed":
                    problems.append(f"level {level - 1} sees {theirs['remote_status']}")
            if level == leaf:
                break
            out = outs[level].get(ticket["id"])
            if out is None:
                problems.append(f"level {level} not delegated")
                break
            if level == 0:
                subtree = _nodes(_json(out["subtree"]))
                states = {(n.get("status"), n.get("state")) for n in subtree}
                if len(subtree) != leaf - 1 or not states <= {("closed", "confirmed")}:
                    problems.append(f"GC roll-up {sorted(map(str, states))} of {len(subtree)}")
            ticket = by_upstream[level + 1].get(out["delegation_id"])
        if problems:
            verdict.unconverged.append(f"{number}: {', '.join(problems)}"[:300])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _nodes(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in tree or []:
        out.append(node)
        out.extend(_nodes(node.get("delegations") or []))
    return out
