"""Reports over a seeded history, on SQLite and PostgreSQL, checked against figures by hand.

History (t0 = 2026-11-02 09:00 UTC), all offered by ``gc`` (depth 0, so its partners are level 1):

- north d1: offered t0, accepted +10 min, resolved +100 min, confirmed, SLA met, rated 5;
  below it ``east`` at level 2: offered +20, accepted +25, resolved +90, SLA breached.
- north d2: offered t0+1 h, accepted +30 min, resolved +200 min, reworked once, breached, rated 3.
- north d3: offered t0+2 h, declined (its clocks no longer count).
- south d4: offered t0+3 h, accepted +20 min, in progress, SLA at risk.
- north d5: offered 40 days before t0 (outside the period).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from account.app import create_app
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.delegations.models import Delegation
from account.links.models import Link
from account.reports import service as report_service
from account.tickets.models import Ticket
from account.users import service as user_service
from exchange.clock import instant
from exchange.signing import generate_key
from tests.support.db import clear_tables

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
POLICY = {"targets": {"normal": {"response_minutes": 60, "resolution_minutes": 120}}}


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seed(engine: Engine) -> None:
    clear_tables(engine)
    with session_scope(engine) as session:
        for peer in ("north", "south"):
            session.add(
                Link(
                    id=f"link-{peer}",
                    account_id="gc",
                    peer_account=peer,
                    peer_label=peer.title() + " Service",
                    direction="downstream",
                    peer_public_key="k" * 43,
                    peer_kid="0" * 16,
                )
            )
        session.flush()
        rows: list[dict[str, Any]] = [
            dict(n="GC-1", peer="north", off=0, acc=10, res=100, state="confirmed", sla="met",
                 rating=5, status="closed", subtree=[{
                     "id": "e1", "partner": "east", "partner_label": "East", "level": 2,
                     "state": "confirmed", "status": "closed", "sla_state": "breached",
                     "offered_at": instant(m(20)), "accepted_at": instant(m(25)),
                     "resolved_at": instant(m(90)), "delegations": []}]),
            dict(n="GC-2", peer="north", off=60, acc=90, res=260, state="resolved",
                 sla="breached", rating=3, status="resolved", reworks=True),
            dict(n="GC-3", peer="north", off=120, acc=None, res=None, state="declined",
                 sla="none", status="open"),
            dict(n="GC-4", peer="south", off=180, acc=200, res=None, state="in_progress",
                 sla="at_risk", status="in_progress"),
            dict(n="GC-5", peer="north", off=-40 * 24 * 60, acc=-40 * 24 * 60 + 5,
                 res=-40 * 24 * 60 + 50, state="confirmed", sla="breached", rating=1,
                 status="closed"),
        ]  # fmt: skip
        for i, row in enumerate(rows, start=1):
            resolved = m(row["res"] + 10) if row["res"] is not None else None
            ticket = Ticket(
                number=row["n"],
                account_id="gc",
                title=f"ticket {i}",
                status=row["status"],
                chain_id=f"00000000-0000-4000-8000-00000000000{i}",
                created_at=m(row["off"] - 5),
                resolved_at=resolved if row["status"] in ("resolved", "closed") else None,
                rating=row.get("rating"),
            )
            session.add(ticket)
            session.flush()
            assert ticket.id is not None
            session.add(
                Delegation(
                    delegation_id=f"00000000-0000-4000-9000-00000000000{i}",
                    account_id="gc",
                    role="out",
                    link_id=f"link-{row['peer']}",
                    peer_account=row["peer"],
                    ticket_id=ticket.id,
                    state=row["state"],
                    offered_at=m(row["off"]),
                    accepted_at=m(row["acc"]) if row["acc"] is not None else None,
                    declined_at=m(row["off"] + 3) if row["state"] == "declined" else None,
                    resolved_at=m(row["res"]) if row["res"] is not None else None,
                    sla_policy=POLICY,
                    sla_state=row["sla"],
                    sla_reworks=[[instant(m(150)), instant(m(160))]] if row.get("reworks") else [],
                    subtree=row.get("subtree", []),
                )
            )


@pytest.fixture
def seeded(engine: Engine) -> Iterator[Engine]:
    seed(engine)
    yield engine
    clear_tables(engine)


def test_partner_scorecards_match_the_figures_computed_by_hand(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        north, south = report_service.partners(
            session=session, account_id="gc", since=SINCE, until=UNTIL
        )
    assert north.model_dump() == {
        "partner": "north",
        "partner_label": "North Service",
        "link_id": "link-north",
        "offered": 3,
        "accepted": 2,
        "declined": 1,
        "accepted_pct": 66.7,
        "median_response_minutes": 20.0,  # 10 and 30
        "p90_response_minutes": 30.0,
        "median_resolution_minutes": 150.0,  # 100 and 200
        "p90_resolution_minutes": 200.0,
        "sla_delegations": 2,  # the declined one does not count
        "breached": 1,
        "breach_pct": 50.0,
        "resolved": 2,
        "reworked": 1,
        "reopen_rate": 50.0,
        "ratings": 2,
        "csat": 4.0,
        "csat_pct": 50.0,
    }
    assert (south.partner, south.offered, south.accepted_pct) == ("south", 1, 100.0)
    assert (south.median_response_minutes, south.median_resolution_minutes) == (20.0, None)
    assert (south.breach_pct, south.reopen_rate, south.csat) == (0.0, None, None)


def test_sla_compliance_by_level_and_partner_matches_the_figures_computed_by_hand(
    seeded: Engine,
) -> None:
    with session_scope(seeded) as session:
        report = report_service.sla(session=session, account_id="gc", since=SINCE, until=UNTIL)
    levels = {r.key: (r.delegations, r.met, r.breached, r.open, r.compliance_pct) for r in
              report.by_level}  # fmt: skip
    assert levels == {"1": (3, 1, 1, 1, 50.0), "2": (1, 0, 1, 0, 0.0)}
    partners = {r.key: (r.label, r.delegations, r.compliance_pct) for r in report.by_partner}
    assert partners == {
        "east": ("East", 1, 0.0),
        "north": ("North Service", 2, 50.0),
        "south": ("South Service", 1, None),
    }


def test_time_by_level_shows_where_the_time_of_a_resolved_chain_went(seeded: Engine) -> None:
    with session_scope(seeded) as session:
        chains = report_service.time_by_level(
            session=session, account_id="gc", since=SINCE, until=UNTIL, label="GC Ltd"
        )
    by_ticket = {c.ticket: c for c in chains}
    assert sorted(by_ticket) == ["GC-1", "GC-2"]
    first = by_ticket["GC-1"]
    assert first.total_minutes == 115.0  # created t0-5, resolved t0+110
    assert [(lv.level, lv.partner_label, lv.held_minutes) for lv in first.levels] == [
        (0, "GC Ltd", 5.0),  # until the offer to north
        (1, "North Service", 10.0),  # accepted +10, handed on to east at +20
        (2, "East", 65.0),  # accepted +25, resolved +90
    ]


@pytest.fixture
async def client(seeded: Engine, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    ctx = NodeContext(
        settings=Settings(account_id="gc", data_dir=tmp_path),
        engine=seeded,
        identity=Identity(account_id="gc", label="GC Ltd", key=generate_key()),
        secret=b"s" * 48,
    )
    with session_scope(seeded) as session:
        user_service.ensure_admin(session=session, username="root", password="root-password-1")
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://gc.test") as http:
        token = (
            await http.post(
                "/api/v1/auth/token", data={"username": "root", "password": "root-password-1"}
            )
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


async def test_reports_over_http_as_json_and_csv_and_bad_periods_are_400(
    client: httpx.AsyncClient,
) -> None:
    period = {"from": "2026-11-01", "to": "2026-11-30"}
    body = (await client.get("/api/v1/reports/partners", params=period)).json()
    assert [item["partner"] for item in body["items"]] == ["north", "south"]
    csv_text = await client.get("/api/v1/reports/partners", params=period | {"format": "csv"})
    assert csv_text.headers["content-type"].startswith("text/csv")
    lines = csv_text.text.splitlines()
    assert lines[0].startswith("partner,partner_label,link_id,offered,accepted")
    assert lines[1].startswith("north,North Service,link-north,3,2,1,66.7,20.0,30.0")
    sla = (await client.get("/api/v1/reports/sla", params=period | {"format": "csv"})).text
    assert "level,1,level 1,3,1,1,1,1,50.0" in sla.splitlines()
    chains = (await client.get("/api/v1/reports/time-by-level", params=period)).json()["items"]
    assert len(chains) == 2
    for bad in ({"from": "2026-12-01", "to": "2026-11-01"}, {"from": "yesterday"}):
        response = await client.get("/api/v1/reports/sla", params=bad)
        assert response.status_code == 400, response.text
        assert "detail" in response.json()
