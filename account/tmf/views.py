"""HTTP endpoints of the TMF621 v5 facade: ``troubleTicket`` and ``hub``.

Errors use the TMF ``Error`` shape (``@type``, ``code``, ``reason``, ``message``, ``status``)
and also carry Tix's ``detail``; bad input is 400 (the specification lists no 422).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from account.deps import ContextDep, CurrentUser, SessionDep, commit
from account.errors import AccountError, Conflict, Forbidden, Invalid, InvalidCredentials, NotFound
from account.tmf import mapping
from account.tmf import service as tmf_service
from account.tmf.config import TmfSettings
from account.tmf.schemas import HubIn, TroubleTicketCreate, TroubleTicketPatch

_REASONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}
_CODES: Final[dict[type[AccountError], int]] = {
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Invalid: 400,
    InvalidCredentials: 401,
}


def tmf_error(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {
        "@type": "Error",
        "code": str(code),
        "reason": _REASONS.get(code, "Error"),
        "message": message,
        "status": str(code),
        "detail": message,
    }
    return JSONResponse(body, status_code=code, headers=headers)


def _validation_message(errors: Any) -> str:
    try:
        err = next(iter(errors))
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid input"))
        return f"{where}: {msg}" if where else msg
    except (StopIteration, TypeError, AttributeError):
        return "invalid input"


class TmfRoute(APIRoute):
    """Renders every error of these routes (auth, validation, domain) as a TMF ``Error``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return tmf_error(400, _validation_message(exc.errors()))
            except ValidationError as exc:
                return tmf_error(400, _validation_message(exc.errors()))
            except HTTPException as exc:
                return tmf_error(exc.status_code, str(exc.detail), headers=exc.headers)
            except AccountError as exc:
                code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), 500)
                headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
                return tmf_error(code, exc.detail, headers=headers)

        return route


router = APIRouter(prefix=mapping.API_BASE, tags=["tmf621"], route_class=TmfRoute)


def _settings(request: Request) -> TmfSettings:
    cached = getattr(request.app.state, "tmf_settings", None)
    if isinstance(cached, TmfSettings):
        return cached
    settings = TmfSettings()
    request.app.state.tmf_settings = settings
    return settings


def _base_url(request: Request, ctx: ContextDep) -> str:
    return ctx.settings.public_url or str(request.base_url).rstrip("/")


_UNSUPPORTED_LIST: Final = ("before", "after", "filter")


@router.get("/troubleTicket")
def list_trouble_tickets(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    response: Response,
    fields: Annotated[str | None, Query(max_length=1000)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    sort: Annotated[str | None, Query(max_length=100)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=200)] = None,
    priority: Annotated[str | None, Query(max_length=50)] = None,
    severity: Annotated[str | None, Query(max_length=50)] = None,
    ticket_type: Annotated[str | None, Query(alias="ticketType", max_length=200)] = None,
    id_: Annotated[str | None, Query(alias="id", max_length=60)] = None,
) -> Any:
    """List visible tickets; filters ``status`` (comma-separated), ``priority``, ``severity``,
    ``ticketType``, ``id``; ``fields`` selects attributes; newest first."""
    for name in _UNSUPPORTED_LIST:
        if name in request.query_params:
            raise Invalid(f"{name} is not supported; filter with attribute=value")
    if sort is not None and sort.strip() not in ("", "-creationDate"):
        raise Invalid("only sort=-creationDate (newest first, the default) is supported")
    statuses = None
    if status_ is not None:
        statuses = frozenset(s.strip() for s in status_.split(",") if s.strip())
        unknown = statuses - set(mapping.TMF_STATUSES)
        if unknown or not statuses:
            raise Invalid(f"status must be among {', '.join(mapping.TMF_STATUSES)}")
    priorities = None
    try:
        if priority is not None:
            priorities = frozenset({mapping.priority_in(priority, None) or "normal"})
        if severity is not None:
            by_severity = mapping.priorities_of_severity(severity)
            priorities = by_severity if priorities is None else priorities & by_severity
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    rows, total = tmf_service.list_tickets(
        session=session,
        identity=ctx.identity,
        user=user,
        offset=offset,
        limit=limit,
        statuses=statuses,
        priorities=priorities,
        ticket_type=ticket_type,
        number=id_,
    )
    base = _base_url(request, ctx)
    items = [
        mapping.select_fields(
            tmf_service.render(
                session=session, identity=ctx.identity, ticket=t, user=user, base_url=base
            ),
            fields,
        )
        for t in rows
    ]
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(items))
    return items


@router.post("/troubleTicket", status_code=status.HTTP_201_CREATED)
def create_trouble_ticket(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    payload: Annotated[Any, Body()],
    fields: Annotated[str | None, Query(max_length=1000)] = None,
) -> Any:
    """Open a ticket (``TroubleTicket_FVO``): name, description, severity, ticketType, priority,
    requestedResolutionDate, externalIdentifier, note, relatedParty (customer, reporter)."""
    body = TroubleTicketCreate.model_validate(payload)
    ticket = tmf_service.create(session=session, identity=ctx.identity, user=user, body=body)
    commit(session, ctx)
    doc = tmf_service.render(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        user=user,
        base_url=_base_url(request, ctx),
    )
    return mapping.select_fields(doc, fields)


@router.get("/troubleTicket/{id}")
def retrieve_trouble_ticket(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    id: str,
    fields: Annotated[str | None, Query(max_length=1000)] = None,
) -> Any:
    ticket = tmf_service.get(session=session, identity=ctx.identity, user=user, number=id)
    doc = tmf_service.render(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        user=user,
        base_url=_base_url(request, ctx),
    )
    return mapping.select_fields(doc, fields)


_PATCH_TYPES: Final = ("application/merge-patch+json", "application/json")


@router.patch("/troubleTicket/{id}")
def patch_trouble_ticket(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    id: str,
    payload: Annotated[Any, Body()],
    fields: Annotated[str | None, Query(max_length=1000)] = None,
) -> Any:
    """A JSON merge patch (``application/merge-patch+json`` or ``application/json``); notes
    without a known id are appended; ``status`` moves the ticket (``statusChangeReason``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _PATCH_TYPES:
        raise Invalid("only JSON merge patch (application/merge-patch+json) is supported")
    body = TroubleTicketPatch.model_validate(payload)
    ticket = tmf_service.get(session=session, identity=ctx.identity, user=user, number=id)
    tmf_service.patch(session=session, identity=ctx.identity, user=user, ticket=ticket, body=body)
    commit(session, ctx)
    doc = tmf_service.render(
        session=session,
        identity=ctx.identity,
        ticket=ticket,
        user=user,
        base_url=_base_url(request, ctx),
    )
    return mapping.select_fields(doc, fields)


@router.delete("/troubleTicket/{id}")
def delete_trouble_ticket(ctx: ContextDep, session: SessionDep, user: CurrentUser, id: str) -> Any:
    """Tickets are never deleted (their chain and audit trail stay): cancel with a PATCH."""
    tmf_service.get(session=session, identity=ctx.identity, user=user, number=id)
    return tmf_error(405, "tickets are not deleted; PATCH status=cancelled instead")


@router.post("/hub", status_code=status.HTTP_201_CREATED)
def create_hub(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    payload: Annotated[Any, Body()],
) -> Any:
    """Register a listener: events on the tickets this user may see are POSTed to
    ``callback`` (http or https); ``query`` may select ``eventType=A,B``."""
    body = HubIn.model_validate(payload)
    hub = tmf_service.create_hub(
        session=session,
        account_id=ctx.account_id,
        user=user,
        callback=body.callback,
        query=body.query,
        allowed_hosts=_settings(request).allowed_hosts,
    )
    commit(session, ctx)
    return tmf_service.hub_public(hub, base_url=_base_url(request, ctx))


@router.get("/hub/{id}")
def get_hub(
    request: Request, ctx: ContextDep, session: SessionDep, user: CurrentUser, id: str
) -> Any:
    hub = tmf_service.get_hub(session=session, account_id=ctx.account_id, user=user, hub_id=id)
    return tmf_service.hub_public(hub, base_url=_base_url(request, ctx))


@router.delete("/hub/{id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_hub(ctx: ContextDep, session: SessionDep, user: CurrentUser, id: str) -> Response:
    tmf_service.delete_hub(session=session, account_id=ctx.account_id, user=user, hub_id=id)
    commit(session, ctx)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_KNOWN = re.compile(r"^(troubleTicket|troubleTicket/[^/]+|hub|hub/[^/]+)$")
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/{rest:path}", methods=_ALL_METHODS, include_in_schema=False)
def elsewhere(rest: str) -> JSONResponse:
    """Anything else under the facade, as a TMF ``Error``: another method on one of its
    resources (405), the specification's resources it does not provide (501), the rest (404)."""
    if _KNOWN.match(rest):
        return tmf_error(405, "method not allowed")
    if rest.split("/")[0] in ("troubleTicketSpecification", "listener"):
        return tmf_error(501, f"{rest.split('/')[0]} is not provided by this node")
    return tmf_error(404, "not found")
