"""Timings read back from the node databases after a run (SQLite, read-only).

Per hop: an envelope's ``created_at`` in the sender's outbox (when the change that caused it
committed its transaction's rows) to ``received_at`` of the same message id in the receiver's
inbox (written with the message's effect). Leaf to origin: the leaf's first
``ticket.status`` envelope saying ``resolved`` to the origin's first ``chain_status``
timeline line that shows that delegation ``resolved``. All clocks are the same machine's.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _instant(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max (nearest-rank) of ``values``."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1],
    }


def outbox(path: Path, since: datetime) -> list[dict[str, Any]]:
    with _connect(path) as db:
        rows = db.execute(
            "SELECT message_id, type, to_account, created_at, sent_at, body, state"
            " FROM outboxmessage"
        ).fetchall()
    out = []
    for message_id, kind, to, created, sent, body, state in rows:
        created_at = _instant(created)
        if created_at < since:
            continue
        out.append(
            {
                "message_id": message_id,
                "type": kind,
                "to": to,
                "created_at": created_at,
                "sent_at": _instant(sent) if sent else None,
                "size": len(body),
                "body": body,
                "state": state,
            }
        )
    return out


def inbox(path: Path) -> dict[str, datetime]:
    with _connect(path) as db:
        rows = db.execute("SELECT message_id, received_at FROM inboxmessage").fetchall()
    return {message_id: _instant(at) for message_id, at in rows}


def chain_resolved_seen(path: Path) -> dict[str, datetime]:
    """Delegation id → when this node's timeline first showed it ``resolved`` (roll-up)."""
    with _connect(path) as db:
        rows = db.execute(
            "SELECT at, detail FROM ticketevent WHERE kind = 'chain_status' ORDER BY at"
        ).fetchall()
    seen: dict[str, datetime] = {}
    for at, detail in rows:
        data = json.loads(detail) if detail else {}
        if data.get("to") == "resolved" and data.get("delegation_id") not in seen:
            seen[str(data["delegation_id"])] = _instant(at)
    return seen


def leaf_resolved_sent(rows: list[dict[str, Any]]) -> dict[str, datetime]:
    """Delegation id → when the leaf wrote its first ``ticket.status`` saying resolved."""
    sent: dict[str, datetime] = {}
    for row in rows:
        if row["type"] != "ticket.status":
            continue
        envelope = json.loads(row["body"])
        subject = str(envelope.get("subject"))
        if (envelope.get("body") or {}).get("status") == "resolved" and subject not in sent:
            sent[subject] = row["created_at"]
    return sent


def analyse(db_paths: list[Path], accounts: list[str], since: datetime) -> dict[str, Any]:
    """Hop and leaf-to-origin latencies (ms) and message counts of one run."""
    outboxes = [outbox(path, since) for path in db_paths]
    inboxes = [inbox(path) for path in db_paths]
    level_of = {account: i for i, account in enumerate(accounts)}
    offer_hops: dict[str, list[float]] = {}
    all_hops: list[float] = []
    by_type: dict[str, int] = {}
    sizes: list[int] = []
    superseded = 0
    for sender, rows in enumerate(outboxes):
        for row in rows:
            if row["state"] == "superseded":  # a newer state went instead; never published
                superseded += 1
                continue
            by_type[row["type"]] = by_type.get(row["type"], 0) + 1
            sizes.append(row["size"])
            receiver = level_of.get(row["to"])
            if receiver is None:
                continue
            applied = inboxes[receiver].get(row["message_id"])
            if applied is None:
                continue
            ms = (applied - row["created_at"]).total_seconds() * 1000
            all_hops.append(ms)
            if row["type"] == "delegation.offer":
                offer_hops.setdefault(f"L{sender}→L{receiver}", []).append(ms)
    leaf_sent = leaf_resolved_sent(outboxes[-1])
    origin_seen = chain_resolved_seen(db_paths[0])
    leaf_to_origin = [
        (origin_seen[key] - at).total_seconds() * 1000
        for key, at in leaf_sent.items()
        if key in origin_seen
    ]
    offers = [ms for values in offer_hops.values() for ms in values]
    return {
        "messages": sum(by_type.values()),
        "messages_by_type": dict(sorted(by_type.items())),
        "superseded": superseded,
        "mean_envelope_bytes": round(statistics.fmean(sizes)) if sizes else 0,
        "offer_hop_ms": percentiles(offers),
        "offer_hop_ms_by_hop": {hop: percentiles(v) for hop, v in sorted(offer_hops.items())},
        "any_hop_ms": percentiles(all_hops),
        "leaf_to_origin_ms": percentiles(leaf_to_origin),
    }
