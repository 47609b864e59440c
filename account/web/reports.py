"""The reports page: partner scorecards and SLA compliance as charts (when F3's reports exist)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from account.deps import ContextDep
from account.web.deps import WebUser
from account.web.tickets import not_found_page

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/reports")
def reports_page(request: Request, ctx: ContextDep, user: WebUser) -> HTMLResponse:
    return not_found_page(request, ctx, user)
