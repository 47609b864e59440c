"""The reports page: partner scorecards, SLA compliance and time by level, drawn as SVG bars.

The numbers come from ``account.reports.service`` (the same functions as
``/api/v1/reports/*``) over a period picked on the page (the last 30 days by default). Only
dispatchers and admins see it, as with the API; the CSV downloads use the service's own CSV.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from account.deps import ContextDep, SessionDep
from account.errors import Invalid
from account.reports import service as report_service
from account.reports.views import period
from account.web import i18n
from account.web.deps import WebUser
from account.web.render import language_of, page, security_headers
from account.web.tickets import DISPATCH, not_found_page

router = APIRouter(prefix="/ui", include_in_schema=False)

CHAINS_SHOWN = 20
_PALETTE = ("#1f4e79", "#2f6fb0", "#4f97d6", "#7fb8e6", "#a9d1f0", "#c9e2f6")

DateText = Annotated[str, Query(alias="from", max_length=40)]
UntilText = Annotated[str, Query(alias="to", max_length=40)]


def _tone(value: float | None, *, good_high: bool = True) -> str:
    if value is None:
        return ""
    score = value if good_high else 100 - value
    return "" if score >= 90 else "mid" if score >= 70 else "low"


def _bars(chains: list[Any]) -> list[dict[str, Any]]:
    """Each resolved chain as one stacked bar: a segment per level, width by time held."""
    out = []
    longest = max((c.total_minutes for c in chains), default=0.0) or 1.0
    for chain in chains[-CHAINS_SHOWN:]:
        x = 0.0
        segments = []
        for lv in chain.levels:
            width = 100.0 * max(lv.held_minutes, 0.0) / longest
            segments.append(
                {
                    "x": round(x, 2),
                    "w": round(width, 2),
                    "fill": _PALETTE[min(lv.level, len(_PALETTE) - 1)],
                    "label": f"L{lv.level} {lv.partner_label}: {lv.held_minutes:.0f} min",
                }
            )
            x += width
        out.append({"chain": chain, "segments": segments})
    return out


def _dates(start: datetime, end: datetime) -> tuple[str, str]:
    return start.date().isoformat(), end.date().isoformat()


@router.get("/reports")
def reports_page(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    since: DateText = "",
    until: UntilText = "",
) -> HTMLResponse:
    if user.role not in DISPATCH:
        return not_found_page(request, ctx, user)
    error = None
    try:
        start, end = period(since or None, until or None)
    except Invalid as exc:
        error = exc.detail
        start, end = period(None, None)
    cards = report_service.partners(
        session=session, account_id=ctx.account_id, since=start, until=end
    )
    sla = report_service.sla(session=session, account_id=ctx.account_id, since=start, until=end)
    chains = report_service.time_by_level(
        session=session,
        account_id=ctx.account_id,
        since=start,
        until=end,
        label=ctx.settings.label,
    )
    shown_from, shown_to = _dates(start, end)
    if not until:
        shown_to = (end + timedelta(days=1)).date().isoformat()
    extra: dict[str, Any] = {"flash": {"kind": "error", "text": error}} if error else {}
    return page(
        request,
        "reports.html",
        ctx=ctx,
        user=user,
        status_code=400 if error else 200,
        cards=cards,
        sla=sla,
        chains=_bars(chains),
        tone=_tone,
        period_from=since if since and not error else shown_from,
        period_to=until if until and not error else shown_to,
        **extra,
    )


@router.get("/reports/{name}.csv", response_model=None)
def report_csv(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    name: str,
    since: DateText = "",
    until: UntilText = "",
) -> Response:
    if user.role not in DISPATCH or name not in ("partners", "sla"):
        return not_found_page(request, ctx, user)
    try:
        start, end = period(since or None, until or None)
    except Invalid as exc:
        t = i18n.translator(language_of(request))
        return page(
            request,
            "error.html",
            ctx=ctx,
            user=user,
            status_code=400,
            heading=t("Reports"),
            message=exc.detail,
        )
    if name == "partners":
        rows: list[Any] = list(
            report_service.partners(
                session=session, account_id=ctx.account_id, since=start, until=end
            )
        )
    else:
        report = report_service.sla(
            session=session, account_id=ctx.account_id, since=start, until=end
        )
        rows = [*report.by_level, *report.by_partner]
    return security_headers(
        Response(
            report_service.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    )
