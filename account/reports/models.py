"""Report rows as API models (also the CSV columns, in field order)."""

from __future__ import annotations

from pydantic import BaseModel


class PartnerScorecard(BaseModel):
    """How one downstream partner did with what we offered it in the period."""

    partner: str
    partner_label: str
    link_id: str
    offered: int
    accepted: int
    declined: int
    accepted_pct: float | None
    median_response_minutes: float | None
    p90_response_minutes: float | None
    median_resolution_minutes: float | None
    p90_resolution_minutes: float | None
    sla_delegations: int
    breached: int
    breach_pct: float | None
    resolved: int
    reworked: int
    reopen_rate: float | None
    ratings: int
    csat: float | None  # mean score, 1 to 5
    csat_pct: float | None  # share of scores 4 or 5


class ComplianceRow(BaseModel):
    """SLA outcomes of the delegations at one level or with one partner."""

    scope: str  # level | partner
    key: str  # the level number, or the partner's account id ("" when not disclosed)
    label: str
    delegations: int  # with an SLA
    met: int
    breached: int
    open: int  # clocks still running (ok or at risk)
    at_risk: int
    compliance_pct: float | None  # met / (met + breached)


class SlaReport(BaseModel):
    since: str
    until: str
    by_level: list[ComplianceRow]
    by_partner: list[ComplianceRow]


class LevelTime(BaseModel):
    level: int
    partner: str | None
    partner_label: str
    held_minutes: float


class ChainTime(BaseModel):
    """Where the time of one resolved chain went: how long each level held the ticket."""

    ticket: str
    title: str
    resolved_at: str
    total_minutes: float
    levels: list[LevelTime]
