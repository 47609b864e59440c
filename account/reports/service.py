"""Reports over a period: partner scorecards, SLA compliance by level and partner, time by level.

**Period.** A delegation belongs to the period in which it was offered; a chain to the period
in which its ticket was resolved. Times are wall-clock minutes (the SLA clocks, in business
time, decide met and breached).

**Definitions.** ``accepted_pct`` = accepted / offered. Response = offer → accept; resolution =
offer → the standing resolution. ``breach_pct`` = delegations whose SLA state is breached /
delegations with an SLA (declined and recalled ones do not count). ``reopen_rate`` = resolved
delegations that came back for rework at least once / delegations resolved at least once.
``csat`` = mean rating of the tickets they worked on; ``csat_pct`` = share of 4 and 5.
Compliance = met / (met + breached), over delegations whose clocks have stopped or breached;
by level it reads each level's state as rolled up the chain (as far as it was disclosed).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from account.delegations import chain
from account.delegations.models import Delegation
from account.links.models import Link
from account.reports import figures
from account.reports.models import (
    ChainTime,
    ComplianceRow,
    LevelTime,
    PartnerScorecard,
    SlaReport,
)
from account.sla.service import VOID_STATES
from account.tickets.models import Ticket
from exchange.clock import instant, parse_instant

__all__ = ["partners", "sla", "time_by_level", "to_csv"]


def _offered_in(
    session: Session, account_id: str, since: datetime, until: datetime
) -> list[Delegation]:
    return list(
        session.exec(
            select(Delegation)
            .where(
                Delegation.account_id == account_id,
                Delegation.role == "out",
                col(Delegation.offered_at) >= since,
                col(Delegation.offered_at) < until,
            )
            .order_by(col(Delegation.offered_at))
        ).all()
    )


def _labels(session: Session, account_id: str) -> dict[str, Link]:
    links = session.exec(select(Link).where(Link.account_id == account_id)).all()
    return {link.id: link for link in links}


def partners(
    *, session: Session, account_id: str, since: datetime, until: datetime
) -> list[PartnerScorecard]:
    """One scorecard per downstream link with offers in the period, busiest first."""
    rows = _offered_in(session, account_id, since, until)
    links = _labels(session, account_id)
    ticket_ids = {d.ticket_id for d in rows}
    ratings: dict[int, int] = {}
    if ticket_ids:
        for ticket_id, rating in session.exec(
            select(Ticket.id, Ticket.rating).where(
                col(Ticket.id).in_(list(ticket_ids)), col(Ticket.rating).is_not(None)
            )
        ).all():
            if ticket_id is not None and rating is not None:
                ratings[ticket_id] = rating
    by_link: dict[str, list[Delegation]] = defaultdict(list)
    for d in rows:
        by_link[d.link_id].append(d)
    cards = []
    for link_id, ds in by_link.items():
        link = links.get(link_id)
        accepted = [d for d in ds if d.accepted_at is not None]
        resolved = [d for d in ds if d.resolved_at is not None]
        ever_resolved = [d for d in ds if d.resolved_at is not None or d.sla_reworks]
        with_sla = [d for d in ds if d.sla_policy and d.state not in VOID_STATES]
        breached = [d for d in with_sla if d.sla_state == "breached"]
        response = [
            figures.minutes_between(d.offered_at, d.accepted_at) for d in accepted if d.accepted_at
        ]
        resolution = [
            figures.minutes_between(d.offered_at, d.resolved_at) for d in resolved if d.resolved_at
        ]
        scores = [ratings[d.ticket_id] for d in ever_resolved if d.ticket_id in ratings]
        reworked = [d for d in ever_resolved if d.sla_reworks]
        cards.append(
            PartnerScorecard(
                partner=ds[0].peer_account,
                partner_label=(link.peer_label if link else "") or ds[0].peer_account,
                link_id=link_id,
                offered=len(ds),
                accepted=len(accepted),
                declined=sum(1 for d in ds if d.state == "declined"),
                accepted_pct=figures.pct(len(accepted), len(ds)),
                median_response_minutes=figures.median(response),
                p90_response_minutes=figures.percentile(response, 90),
                median_resolution_minutes=figures.median(resolution),
                p90_resolution_minutes=figures.percentile(resolution, 90),
                sla_delegations=len(with_sla),
                breached=len(breached),
                breach_pct=figures.pct(len(breached), len(with_sla)),
                resolved=len(ever_resolved),
                reworked=len(reworked),
                reopen_rate=figures.pct(len(reworked), len(ever_resolved)),
                ratings=len(scores),
                csat=figures.mean([float(s) for s in scores]),
                csat_pct=figures.pct(sum(1 for s in scores if s >= 4), len(scores)),
            )
        )
    cards.sort(key=lambda c: (-c.offered, c.partner))
    return cards


class _Tally:
    def __init__(self, scope: str, key: str, label: str) -> None:
        self.scope, self.key, self.label = scope, key, label
        self.states: list[str] = []

    def row(self) -> ComplianceRow:
        met = self.states.count("met")
        breached = self.states.count("breached")
        at_risk = self.states.count("at_risk")
        return ComplianceRow(
            scope=self.scope,
            key=self.key,
            label=self.label,
            delegations=len(self.states),
            met=met,
            breached=breached,
            open=self.states.count("ok") + at_risk,
            at_risk=at_risk,
            compliance_pct=figures.pct(met, met + breached),
        )


def sla(*, session: Session, account_id: str, since: datetime, until: datetime) -> SlaReport:
    """SLA compliance of the delegations offered in the period, by level and by partner."""
    rows = _offered_in(session, account_id, since, until)
    links = _labels(session, account_id)
    depth = _depths(session, rows)
    levels: dict[int, _Tally] = {}
    partners_: dict[str, _Tally] = {}

    def count(level: int, partner: str | None, label: str, state: str) -> None:
        if state == "none":
            return
        levels.setdefault(level, _Tally("level", str(level), f"level {level}")).states.append(state)
        key = partner or ""
        partners_.setdefault(key, _Tally("partner", key, label if partner else "undisclosed"))
        partners_[key].states.append(state)

    for d in rows:
        if d.state in VOID_STATES:
            continue
        link = links.get(d.link_id)
        label = (link.peer_label if link else "") or d.peer_account
        count(depth.get(d.ticket_id, 0) + 1, d.peer_account, label, d.sla_state)
        for node in chain.walk(list(d.subtree or [])):
            if node.get("state") in VOID_STATES:
                continue
            count(
                int(node["level"]),
                node.get("partner"),
                str(node.get("partner_label") or ""),
                str(node.get("sla_state") or "none"),
            )
    return SlaReport(
        since=instant(since),
        until=instant(until),
        by_level=[levels[k].row() for k in sorted(levels)],
        by_partner=[partners_[k].row() for k in sorted(partners_)],
    )


def _depths(session: Session, rows: Iterable[Delegation]) -> dict[int, int]:
    ids = list({d.ticket_id for d in rows})
    if not ids:
        return {}
    found = session.exec(select(Ticket.id, Ticket.depth).where(col(Ticket.id).in_(ids))).all()
    return {ticket_id: depth for ticket_id, depth in found if ticket_id is not None}


def _at(value: Any) -> datetime | None:
    return parse_instant(value) if isinstance(value, str) else None


def _held(nodes: Sequence[dict[str, Any]], out: list[LevelTime]) -> None:
    """Each accepted node's time from acceptance to handing on (its first offer) or resolving."""
    for node in nodes:
        if node.get("state") in VOID_STATES:
            continue
        start = _at(node.get("accepted_at")) or _at(node.get("offered_at"))
        children = [c for c in node.get("delegations", []) if c.get("state") not in VOID_STATES]
        offers = [t for t in (_at(c.get("offered_at")) for c in children) if t is not None]
        end = min(offers) if offers else _at(node.get("resolved_at"))
        if start is not None and end is not None:
            out.append(
                LevelTime(
                    level=int(node["level"]),
                    partner=node.get("partner"),
                    partner_label=str(node.get("partner_label") or ""),
                    held_minutes=round(figures.minutes_between(start, end), 2),
                )
            )
        _held(children, out)


def time_by_level(
    *, session: Session, account_id: str, since: datetime, until: datetime, label: str = ""
) -> list[ChainTime]:
    """For each of our tickets resolved in the period: how long each level held it."""
    tickets = session.exec(
        select(Ticket)
        .where(
            Ticket.account_id == account_id,
            col(Ticket.resolved_at).is_not(None),
            col(Ticket.resolved_at) >= since,
            col(Ticket.resolved_at) < until,
            col(Ticket.status).in_(["resolved", "closed"]),
        )
        .order_by(col(Ticket.resolved_at))
    ).all()
    links = _labels(session, account_id)
    out = []
    for ticket in tickets:
        assert ticket.resolved_at is not None
        delegations = [
            d
            for d in session.exec(
                select(Delegation).where(
                    Delegation.ticket_id == ticket.id, Delegation.role == "out"
                )
            ).all()
            if d.state not in VOID_STATES
        ]
        offers = [d.offered_at for d in delegations]
        own_end = min(offers) if offers else ticket.resolved_at
        levels = [
            LevelTime(
                level=ticket.depth,
                partner=account_id,
                partner_label=label or account_id,
                held_minutes=round(figures.minutes_between(ticket.created_at, own_end), 2),
            )
        ]
        nodes = [
            {
                "level": ticket.depth + 1,
                "partner": d.peer_account,
                "partner_label": (links[d.link_id].peer_label if d.link_id in links else "")
                or d.peer_account,
                "state": d.state,
                "offered_at": instant(d.offered_at),
                "accepted_at": instant(d.accepted_at) if d.accepted_at else None,
                "resolved_at": instant(d.resolved_at) if d.resolved_at else None,
                "delegations": list(d.subtree or []),
            }
            for d in delegations
        ]
        _held(nodes, levels)
        out.append(
            ChainTime(
                ticket=ticket.number,
                title=ticket.title,
                resolved_at=instant(ticket.resolved_at),
                total_minutes=round(
                    figures.minutes_between(ticket.created_at, ticket.resolved_at), 2
                ),
                levels=levels,
            )
        )
    return out


def to_csv(rows: Sequence[BaseModel]) -> str:
    """Rows as CSV with a header line (nested lists are flattened by the caller)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    fields = list(type(rows[0]).model_fields)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: _cell(v) for k, v in row.model_dump(mode="json").items() if k in fields}
        )
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
