"""Report endpoints: JSON by default, CSV with ``format=csv``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from account.deps import ContextDep, DispatcherUser, SessionDep
from account.errors import Invalid
from account.reports import service as report_service
from account.reports.models import LevelTime
from exchange.clock import aware, instant, utcnow

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Format = Literal["json", "csv"]
DEFAULT_DAYS = 30
MAX_DAYS = 3660


def _moment(value: str | None, name: str) -> datetime | None:
    """A date (``2026-11-01``, midnight UTC) or an RFC 3339 instant."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        return aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise Invalid(f"{name} must be a date like 2026-11-01 or an RFC 3339 instant") from None


def period(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """The report's period: ``[from, to)``, the last 30 days by default."""
    end = _moment(until, "to") or utcnow()
    start = _moment(since, "from") or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise Invalid("from must be before to")
    if end - start > timedelta(days=MAX_DAYS):
        raise Invalid(f"a report covers at most {MAX_DAYS} days")
    return start, end


From = Annotated[str | None, Query(alias="from", max_length=40, description="date or instant")]
To = Annotated[str | None, Query(alias="to", max_length=40, description="date or instant")]


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/partners")
def partners(
    ctx: ContextDep,
    session: SessionDep,
    user: DispatcherUser,
    since: From = None,
    until: To = None,
    format: Format = "json",
) -> Any:
    """Scorecards of our downstream partners over the period."""
    start, end = period(since, until)
    cards = report_service.partners(
        session=session, account_id=ctx.account_id, since=start, until=end
    )
    if format == "csv":
        return _csv(report_service.to_csv(cards), "partners")
    return {"from": instant(start), "to": instant(end), "items": [c.model_dump() for c in cards]}


@router.get("/sla")
def sla(
    ctx: ContextDep,
    session: SessionDep,
    user: DispatcherUser,
    since: From = None,
    until: To = None,
    format: Format = "json",
) -> Any:
    """SLA compliance per level of the chain and per partner over the period."""
    start, end = period(since, until)
    report = report_service.sla(session=session, account_id=ctx.account_id, since=start, until=end)
    if format == "csv":
        return _csv(report_service.to_csv([*report.by_level, *report.by_partner]), "sla")
    return report.model_dump()


@router.get("/time-by-level")
def time_by_level(
    ctx: ContextDep,
    session: SessionDep,
    user: DispatcherUser,
    since: From = None,
    until: To = None,
    format: Format = "json",
) -> Any:
    """For each chain resolved in the period: how long each level held the ticket."""
    start, end = period(since, until)
    chains = report_service.time_by_level(
        session=session,
        account_id=ctx.account_id,
        since=start,
        until=end,
        label=ctx.settings.label,
    )
    if format == "csv":
        flat = [
            _FlatLevel(ticket=c.ticket, resolved_at=c.resolved_at, **lv.model_dump())
            for c in chains
            for lv in c.levels
        ]
        return _csv(report_service.to_csv(flat), "time-by-level")
    return {"from": instant(start), "to": instant(end), "items": [c.model_dump() for c in chains]}


class _FlatLevel(LevelTime):
    ticket: str
    resolved_at: str
