"""Ticket pages: the list with filters, a new ticket, the ticket page and its actions.

Every page calls the same services as the JSON views (``account.tickets.service``,
``account.delegations.service``, ``account.attachments.service``) in one transaction that
``account.deps.commit`` ends, so the outbox and the roll-ups behave exactly as for the API.
Visibility is the services' own: a contact gets only their organisation's tickets, and any
other ticket is a 404 page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from account.attachments import service as attachment_service
from account.attachments.blobs import BlobTooLarge
from account.attachments.content import ContentMismatch, content_disposition, resolve_content_type
from account.attachments.models import VISIBILITIES, AttachmentIn
from account.attachments.upload import BadUpload, read_upload
from account.context import NodeContext
from account.delegations import chain
from account.delegations import service as delegation_service
from account.delegations.models import DelegationCreate
from account.deps import ContextDep, SessionDep, commit
from account.errors import AccountError, Forbidden, Invalid, NotFound
from account.links.models import Link
from account.sla import flows as sla_flows
from account.tickets import service as ticket_service
from account.tickets import states
from account.tickets.models import CommentCreate, Ticket, TicketCreate, TicketUpdate
from account.tickets.views import ticket_public
from account.users import service as user_service
from account.users.models import User
from account.web import chain_svg, i18n
from account.web.deps import CsrfForm, CsrfRefused, WebUser, field
from account.web.render import env, language_of, page, redirect, security_headers
from account.web.session import csrf_valid, session_cookie

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
STAFF = ("admin", "dispatcher", "engineer")
DISPATCH = ("admin", "dispatcher")
PRIORITIES = ("critical", "high", "normal", "low")


def _require(user: User, roles: tuple[str, ...]) -> None:
    if user.role not in roles:
        raise Forbidden("not allowed for your role")


def _ticket_url(number: str) -> str:
    return "/ui/tickets/" + quote(number, safe="")


def validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(x) for x in error.get("loc", ()) if x != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)


def not_found_page(request: Request, ctx: NodeContext, user: User | None) -> HTMLResponse:
    t = i18n.translator(language_of(request))
    return page(
        request,
        "error.html",
        ctx=ctx,
        user=user,
        status_code=404,
        heading=t("Not found"),
        message=t("There is no such page, or it is not yours to see."),
    )


def act(
    request: Request,
    ctx: NodeContext,
    session: Session,
    user: User,
    back: str,
    work: Callable[[], str],
) -> Response:
    """Run ``work`` (which returns the success message) and commit; errors go back as messages."""
    try:
        message = work()
        commit(session, ctx)
    except Missing:
        session.rollback()
        return not_found_page(request, ctx, user)
    except AccountError as exc:
        session.rollback()
        return redirect(back, error=exc.detail)
    except ValidationError as exc:
        session.rollback()
        return redirect(back, error=validation_message(exc))
    return redirect(back, ok=message)


class Missing(NotFound):
    """The page's own object is not there for this user: the answer is the 404 page."""


def _get(session: Session, ctx: NodeContext, user: User, number: str) -> Ticket:
    try:
        return ticket_service.get_visible(
            session=session, account_id=ctx.account_id, user=user, number=number
        )
    except NotFound as exc:
        raise Missing(exc.detail) from exc


def _downstream_links(session: Session, ctx: NodeContext, *, active_only: bool) -> list[Link]:
    statement = select(Link).where(
        Link.account_id == ctx.account_id, Link.direction == "downstream"
    )
    if active_only:
        statement = statement.where(Link.state == "active")
    return list(session.exec(statement.order_by(col(Link.peer_account))).all())


# -- list and create ---------------------------------------------------------------------------


@router.get("/tickets")
def list_page(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    status: Annotated[str, Query(max_length=20)] = "",
    partner: Annotated[str, Query(max_length=63)] = "",
    sla: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    mine: Annotated[str, Query(max_length=1)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    status = status if status in states.TICKET_STATUSES else ""
    sla = sla if sla in ("at_risk", "breached") else ""
    ticket_ids = None
    if not (partner and user.role in STAFF):
        partner = ""
    mine = "1" if mine == "1" and user.role in STAFF else ""
    if mine:
        assigned = session.exec(
            select(Ticket.id).where(
                Ticket.account_id == ctx.account_id, Ticket.assignee == user.username
            )
        ).all()
        ticket_ids = [i for i in assigned if i is not None]
    items, total = ticket_service.list_visible(
        session=session,
        account_id=ctx.account_id,
        user=user,
        status=[status] if status else (),
        q=q or None,
        ticket_ids=ticket_ids,
        partner=partner or None,
        limit=PAGE_SIZE,
        offset=offset,
        sla=sla or None,
    )
    filters = {"status": status, "partner": partner, "sla": sla, "q": q, "mine": mine}

    def url(at: int) -> str:
        query = {k: v for k, v in filters.items() if v} | ({"offset": str(at)} if at else {})
        return "/ui/tickets" + ("?" + urlencode(query) if query else "")

    return page(
        request,
        "tickets.html",
        ctx=ctx,
        user=user,
        items=items,
        total=total,
        f=filters,
        statuses=states.TICKET_STATUSES,
        partners=_downstream_links(session, ctx, active_only=False) if user.role in STAFF else [],
        prev_url=url(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
        next_url=url(offset + PAGE_SIZE) if offset + PAGE_SIZE < total else None,
    )


_NEW_FIELDS = (
    "title", "description", "priority", "category", "site", "address", "equipment",
    "requester_name", "requester_email", "requester_phone", "organisation",
)  # fmt: skip


@router.get("/tickets/new")
def new_page(request: Request, ctx: ContextDep, user: WebUser) -> HTMLResponse:
    return page(
        request,
        "ticket_new.html",
        ctx=ctx,
        user=user,
        form=dict.fromkeys(_NEW_FIELDS, ""),
        priorities=PRIORITIES,
    )


def _ticket_in(values: dict[str, str], user: User) -> TicketCreate:
    service_object = {k: values[k] for k in ("site", "address", "equipment") if values[k]}
    data: dict[str, Any] = {
        "title": values["title"],
        "description": values["description"],
        "priority": values["priority"] or "normal",
        "service_object": service_object or None,
    }
    if user.role in STAFF:
        data["category"] = values["category"] or None
        data["organisation"] = values["organisation"] or None
        if values["requester_name"]:
            data["requester"] = {
                "name": values["requester_name"],
                "email": values["requester_email"] or None,
                "phone": values["requester_phone"] or None,
            }
    return TicketCreate.model_validate(data)


@router.post("/tickets/new", response_model=None)
def create(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, form: CsrfForm
) -> Response:
    values = {name: field(form, name) for name in _NEW_FIELDS}
    t = i18n.translator(language_of(request))
    error = ""
    try:
        ticket = ticket_service.create(
            session=session,
            account_id=ctx.account_id,
            ticket_in=_ticket_in(values, user),
            actor=user,
        )
        commit(session, ctx)
    except ValidationError as exc:
        session.rollback()
        error = validation_message(exc)
    except AccountError as exc:
        session.rollback()
        error = exc.detail
    if error:
        response = page(
            request,
            "ticket_new.html",
            ctx=ctx,
            user=user,
            status_code=400,
            form=values,
            priorities=PRIORITIES,
            flash={"kind": "error", "text": error},
        )
        return response
    created = t("Ticket {number} created.", number=ticket.number)
    return redirect(_ticket_url(ticket.number), ok=created)


# -- the ticket page ---------------------------------------------------------------------------


def _picture(
    session: Session, ctx: NodeContext, ticket: Ticket, t: Callable[..., str]
) -> chain_svg.Picture:
    subtree = delegation_service.subtree_for(session=session, ticket=ticket)
    nodes = [chain.api_node(node) for node in subtree]
    events = sla_flows.chain_events(session=session, account_id=ctx.account_id, ticket=ticket)
    sla_flows.annotate_chain(nodes, events)  # breaches per box, as GET …/chain shows them
    return chain_svg.layout(
        number=ticket.number,
        status=ticket.status,
        label=ctx.identity.label,
        level=ticket.depth,
        delegations=nodes,
        sla=ticket.sla_state or "none",
        undisclosed=t("undisclosed"),
        upstream=_upstream_of(session, ctx, ticket),
    )


def _upstream_of(session: Session, ctx: NodeContext, ticket: Ticket) -> tuple[str, str] | None:
    """The partner this ticket came from, as our link names it, and its ticket number."""
    if not ticket.upstream_account:
        return None
    link = session.exec(
        select(Link).where(
            Link.account_id == ctx.account_id,
            Link.peer_account == ticket.upstream_account,
            Link.direction == "upstream",
        )
    ).first()
    label = (link.peer_label if link else "") or ticket.upstream_account
    return label, ticket.upstream_ref or ""


def _chain_values(
    session: Session, ctx: NodeContext, ticket: Ticket, t: Callable[..., str]
) -> dict[str, Any]:
    picture = _picture(session, ctx, ticket, t)
    version = "|".join(f"{b.level}:{b.state}:{b.status}:{b.sla}:{b.due}" for b in picture.boxes)
    return {
        "picture": picture,
        "box_w": chain_svg.BOX_W,
        "box_h": chain_svg.BOX_H,
        "version": version,
    }


@router.get("/tickets/{number}")
def ticket_page(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, number: str
) -> HTMLResponse:
    try:
        ticket = _get(session, ctx, user, number)
    except NotFound:
        return not_found_page(request, ctx, user)
    t = i18n.translator(language_of(request))
    public = ticket_public(session, ticket, user)
    staff = user.role in STAFF
    dispatcher = user.role in DISPATCH
    incoming = delegation_service.incoming(session=session, ticket=ticket)
    moves: list[str] = []
    if staff and ticket.status != "offered":
        allowed = set(states.allowed_moves(ticket.status))
        if ticket.upstream_account:
            allowed -= states.UPSTREAM_OWNED
        moves = [s for s in states.TICKET_STATUSES if s in allowed]
    partners = _downstream_links(session, ctx, active_only=True) if dispatcher else []
    can_delegate = (
        dispatcher
        and bool(partners)
        and ticket.status not in states.TERMINAL_TICKET
        and ticket.status not in ("offered", "resolved")
    )
    raw_sla = public.get("sla")
    sla: dict[str, Any] = raw_sla if isinstance(raw_sla, dict) else {}
    values: dict[str, Any] = {
        "tk": public,
        "clocks": [(name, sla[name]) for name in ("response", "resolution") if sla.get(name)],
        "squeeze": bool(sla.get("squeeze")),
        "delegation_sla": {item["id"]: item for item in sla.get("delegations") or []},
        "sla_state": ticket.sla_state,
        "answer_offer": dispatcher and ticket.status == "offered" and incoming is not None,
        "moves": moves,
        "can_delegate": can_delegate,
        "partners": partners,
        "assignees": _assignees(session) if dispatcher else [],
        # The client (a contact, or the origin's dispatcher) rates; a partner rates its own
        # subcontractors' work, never the work it did itself.
        "can_rate": user.role != "engineer"
        and ticket.status in ("resolved", "closed")
        and (not ticket.upstream_account or bool(public.get("delegations"))),
        "can_comment": ticket.status not in states.TERMINAL_TICKET or staff,
        "visibilities": ("public", "partner", "internal") if staff else ("public",),
        "comments": ticket_service.list_comments(session=session, ticket=ticket, user=user),
        "attachments": attachment_service.list_visible(session=session, ticket=ticket, user=user),
        "timeline": ticket_service.timeline(session=session, ticket=ticket) if staff else [],
    }
    if staff:
        values |= _chain_values(session, ctx, ticket, t)
    return page(request, "ticket.html", ctx=ctx, user=user, **values)


@router.get("/tickets/{number}/chain")
def chain_fragment(
    request: Request, ctx: ContextDep, session: SessionDep, user: WebUser, number: str
) -> HTMLResponse:
    """The chain picture alone, for the page to poll and swap in when roll-ups arrive."""
    if user.role not in STAFF:
        return not_found_page(request, ctx, user)
    try:
        ticket = _get(session, ctx, user, number)
    except NotFound:
        return not_found_page(request, ctx, user)
    lang = language_of(request)
    t = i18n.translator(lang)
    html = env.get_template("chain.html").render(t=t, **_chain_values(session, ctx, ticket, t))
    return security_headers(HTMLResponse(html))


# -- actions -----------------------------------------------------------------------------------


@router.post("/tickets/{number}/comments", response_model=None)
def post_comment(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    t = i18n.translator(language_of(request))

    def work() -> str:
        ticket = _get(session, ctx, user, number)
        comment_in = CommentCreate.model_validate(
            {"body": field(form, "body"), "visibility": field(form, "visibility") or "partner"}
        )
        if user.role == "contact" and comment_in.visibility != "public":
            raise Forbidden("contacts write public comments only")
        delegation_service.comment(
            session=session,
            identity=ctx.identity,
            ticket=ticket,
            comment_in=comment_in,
            actor=user.full_name or user.username,
        )
        return t("Comment added.")

    return act(request, ctx, session, user, _ticket_url(number), work)


@router.post("/tickets/{number}/status", response_model=None)
def post_status(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    t = i18n.translator(language_of(request))

    def work() -> str:
        _require(user, STAFF)
        ticket = _get(session, ctx, user, number)
        target = field(form, "status")
        if target not in states.TICKET_STATUSES:
            raise Invalid("no such status")
        delegation_service.change_status(
            session=session,
            identity=ctx.identity,
            ticket=ticket,
            target=target,
            note=field(form, "note")[:20_000],
            actor=user.username,
        )
        return t("Status set to {status}.", status=t("status:" + target))

    return act(request, ctx, session, user, _ticket_url(number), work)


@router.post("/tickets/{number}/accept", response_model=None)
def post_accept(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    t = i18n.translator(language_of(request))

    def work() -> str:
        _require(user, DISPATCH)
        ticket = _get(session, ctx, user, number)
        delegation_service.accept(
            session=session, identity=ctx.identity, ticket=ticket, actor=user.username
        )
        return t("Offer accepted.")

    return act(request, ctx, session, user, _ticket_url(number), work)


@router.post("/tickets/{number}/decline", response_model=None)
def post_decline(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    t = i18n.translator(language_of(request))

    def work() -> str:
        _require(user, DISPATCH)
        ticket = _get(session, ctx, user, number)
        delegation_service.decline(
            session=session,
            identity=ctx.identity,
            ticket=ticket,
            reason=field(form, "reason")[:500],
            actor=user.username,
        )
        return t("Offer declined.")

    return act(request, ctx, session, user, _ticket_url(number), work)


@router.post("/tickets/{number}/delegate", response_model=None)
def post_delegate(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    t = i18n.translator(language_of(request))

    def work() -> str:
        _require(user, DISPATCH)
        ticket = _get(session, ctx, user, number)
        delegation_in = DelegationCreate.model_validate(
            {"partner": field(form, "partner"), "note": field(form, "note")}
        )
        delegation_service.delegate(
            session=session,
            identity=ctx.identity,
            ticket=ticket,
            delegation_in=delegation_in,
            actor=user.username,
            settings=ctx.settings,
        )
        return t("Offered to {partner}.", partner=delegation_in.partner)

    return act(request, ctx, session, user, _ticket_url(number), work)


@router.post("/tickets/{number}/rating", response_model=None)
def post_rating(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    t = i18n.translator(language_of(request))

    def work() -> str:
        if user.role == "engineer":
            raise Forbidden("engineers cannot rate tickets")
        ticket = _get(session, ctx, user, number)
        score = field(form, "score")
        if score not in ("1", "2", "3", "4", "5"):
            raise Invalid("the score is 1 to 5")
        delegation_service.rate(
            session=session,
            identity=ctx.identity,
            ticket=ticket,
            score=int(score),
            comment=field(form, "comment")[:20_000],
            actor=user.username,
        )
        return t("Thank you for the rating.")

    return act(request, ctx, session, user, _ticket_url(number), work)


@router.post("/delegations/{delegation_id}/{action}", response_model=None)
def post_delegation_action(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    delegation_id: str,
    action: str,
) -> Response:
    t = i18n.translator(language_of(request))
    number = field(form, "number")[:60]

    def work() -> str:
        _require(user, DISPATCH)
        delegation = delegation_service.get(
            session=session, account_id=ctx.account_id, delegation_id=delegation_id[:36]
        )
        reason = field(form, "reason")[:500]
        if action == "confirm":
            delegation_service.confirm(
                session=session,
                identity=ctx.identity,
                delegation=delegation,
                note=reason,
                actor=user.username,
            )
            return t("Result confirmed.")
        if action == "recall":
            delegation_service.recall(
                session=session,
                identity=ctx.identity,
                delegation=delegation,
                reason=reason,
                actor=user.username,
            )
            return t("Delegation recalled.")
        if action == "rework":
            delegation_service.rework(
                session=session,
                identity=ctx.identity,
                delegation=delegation,
                reason=reason,
                actor=user.username,
            )
            return t("Returned for rework.")
        raise Missing(f"no action {action}")

    return act(request, ctx, session, user, _ticket_url(number) if number else "/ui/tickets", work)


@router.post("/tickets/{number}/assign", response_model=None)
def post_assign(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    form: CsrfForm,
    number: str,
) -> Response:
    """Give the ticket to one of our own people (partners see the role, never the person)."""
    t = i18n.translator(language_of(request))

    def work() -> str:
        _require(user, DISPATCH)
        ticket = _get(session, ctx, user, number)
        username = field(form, "assignee")
        if username and username not in {u.username for u in _assignees(session)}:
            raise Invalid("no such colleague")
        update_in = TicketUpdate.model_validate({"assignee": username or None})
        changes = ticket_service.update(
            session=session, ticket=ticket, update_in=update_in, actor=user
        )
        delegation_service.send_update(
            session=session, identity=ctx.identity, ticket=ticket, changes=changes
        )
        return t("Assigned to {name}.", name=username) if username else t("Unassigned.")

    return act(request, ctx, session, user, _ticket_url(number), work)


def _assignees(session: Session) -> list[User]:
    """Active staff who can work a ticket."""
    users, _total = user_service.list_users(session=session, limit=500, offset=0)
    return [u for u in users if u.active and u.role in STAFF]


# -- attachments -------------------------------------------------------------------------------


def _ticket_id_in_scope(session: Session, ctx: NodeContext, user: User, number: str) -> int:
    ticket = _get(session, ctx, user, number)
    assert ticket.id is not None
    ticket_id = ticket.id
    session.rollback()  # end the transaction before the body streams (see attachments.views)
    return ticket_id


def _record_upload(
    session: Session, ctx: NodeContext, ticket_id: int, attachment_in: AttachmentIn, actor: str
) -> None:
    ticket = ticket_service.get_by_id(session=session, ticket_id=ticket_id)
    attachment_service.create(
        session=session,
        identity=ctx.identity,
        settings=ctx.settings,
        ticket=ticket,
        attachment_in=attachment_in,
        actor=actor,
    )
    commit(session, ctx)


@router.post("/tickets/{number}/attachments", response_model=None)
async def post_attachment(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    number: str,
    content_type: Annotated[str, Header(max_length=500)] = "",
) -> Response:
    """Upload one file from the page's form; streamed into the blob store like the API does."""
    t = i18n.translator(language_of(request))
    back = _ticket_url(number)
    try:
        ticket_id = await run_in_threadpool(_ticket_id_in_scope, session, ctx, user, number)
    except NotFound:
        return not_found_page(request, ctx, user)
    limit = ctx.settings.attachment_max_bytes
    store = attachment_service.blob_store(ctx.settings)
    with store.writer(max_bytes=limit) as writer:
        try:
            upload = await read_upload(request.stream(), content_type=content_type, writer=writer)
        except BlobTooLarge:
            return redirect(back, error=t("The file is over the limit of {limit}.", limit=limit))
        except BadUpload as exc:
            if not content_type.lower().startswith("multipart/form-data"):
                raise CsrfRefused() from exc
            return redirect(back, error=str(exc))
        if not csrf_valid(
            secret=ctx.secret,
            session_token=request.cookies.get(session_cookie(ctx.account_id)),
            submitted=upload.fields.get("csrf"),
        ):
            raise CsrfRefused()
        visibility = upload.fields.get("visibility") or (
            "public" if user.role == "contact" else "partner"
        )
        if visibility not in VISIBILITIES or (user.role == "contact" and visibility != "public"):
            return redirect(back, error=t("Not allowed for your role."))
        if not upload.filename or writer.size == 0:
            return redirect(back, error=t("Choose a file first."))
        try:
            stored_type = resolve_content_type(upload.content_type, writer.head)
        except ContentMismatch as exc:
            return redirect(back, error=str(exc))
        digest = await run_in_threadpool(writer.commit)
        size = writer.size
    attachment_in = AttachmentIn(
        filename=upload.filename,
        content_type=stored_type,
        size=size,
        sha256=digest,
        visibility=visibility,  # checked against VISIBILITIES above
    )
    try:
        await run_in_threadpool(
            _record_upload, session, ctx, ticket_id, attachment_in, user.full_name or user.username
        )
    except AccountError as exc:
        return redirect(back, error=exc.detail)
    return redirect(back, ok=t("File uploaded."))


@router.get("/tickets/{number}/attachments/{attachment_id}", response_model=None)
def download(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: WebUser,
    number: str,
    attachment_id: str,
) -> Response:
    try:
        ticket = _get(session, ctx, user, number)
        row = attachment_service.get_visible(
            session=session, ticket=ticket, user=user, attachment_id=attachment_id
        )
    except NotFound:
        return not_found_page(request, ctx, user)
    path = attachment_service.blob_store(ctx.settings).path(row.sha256)
    if not row.stored or not path.is_file():
        return not_found_page(request, ctx, user)
    return FileResponse(
        path,
        media_type=row.content_type,
        headers={
            "Content-Disposition": content_disposition(row.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )
