"""Attachment endpoints of a ticket: upload (streamed, size- and type-checked), list, download.

The upload handler is ``async`` because it reads the request stream itself; its database work
runs in the thread pool, and it ends its first transaction before the body streams, so a slow
upload never holds the database (SQLite has one connection and takes the write lock at BEGIN).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import FileResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from account.attachments import service as attachment_service
from account.attachments.blobs import BlobTooLarge
from account.attachments.content import (
    ContentMismatch,
    content_disposition,
    resolve_content_type,
)
from account.attachments.models import (
    VISIBILITIES,
    Attachment,
    AttachmentIn,
    AttachmentList,
    AttachmentPublic,
)
from account.attachments.upload import BadUpload, read_upload
from account.context import NodeContext
from account.deps import ContextDep, CurrentUser, SessionDep, commit
from account.errors import Forbidden, Invalid, NotFound
from account.http_errors import BodySizeLimit
from account.tickets import service as ticket_service
from account.users.models import User
from exchange.clock import instant

__all__ = ["MULTIPART_OVERHEAD", "BodyLimits", "router"]

router = APIRouter(prefix="/api/v1/tickets", tags=["attachments"])

# Room for the multipart framing and form fields around a file at the hard limit.
MULTIPART_OVERHEAD = 64 * 1024
_UPLOAD_PATH = re.compile(r"^/(?:api/v1|ui)/tickets/[^/]+/attachments/?$")  # API and web UI
_UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "visibility": {"type": "string", "enum": list(VISIBILITIES)},
                    },
                }
            }
        },
    }
}


def attachment_public(row: Attachment, role: str) -> AttachmentPublic:
    return AttachmentPublic(
        id=row.attachment_id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        visibility=row.visibility,
        uploaded_by=row.uploaded_by,
        source_account=None if role == "contact" else row.source_account,
        stored=row.stored,
        created_at=instant(row.created_at),
    )


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, detail=f"attachment over the limit of {limit} bytes"
    )


def _open_ticket_scope(session: Session, ctx: NodeContext, user: User, number: str) -> int:
    """The id of the ticket if the user may see it; then end the transaction (see module doc)."""
    ticket = ticket_service.get_visible(
        session=session, account_id=ctx.account_id, user=user, number=number
    )
    assert ticket.id is not None
    ticket_id = ticket.id
    session.rollback()
    return ticket_id


def _record_upload(
    session: Session,
    ctx: NodeContext,
    ticket_id: int,
    attachment_in: AttachmentIn,
    actor: str,
) -> Attachment:
    ticket = ticket_service.get_by_id(session=session, ticket_id=ticket_id)
    row = attachment_service.create(
        session=session,
        identity=ctx.identity,
        settings=ctx.settings,
        ticket=ticket,
        attachment_in=attachment_in,
        actor=actor,
    )
    commit(session, ctx)
    return row


@router.post(
    "/{number}/attachments", status_code=status.HTTP_201_CREATED, openapi_extra=_UPLOAD_FORM
)
async def upload_attachment(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    number: str,
    content_type: Annotated[str, Header(max_length=500)] = "",
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> AttachmentPublic:
    """Upload one file (``file``) with an optional ``visibility``; contacts upload public ones."""
    role, actor = user.role, user.full_name or user.username
    ticket_id = await run_in_threadpool(_open_ticket_scope, session, ctx, user, number)
    limit = ctx.settings.attachment_max_bytes
    if content_length is not None and content_length > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)
    store = attachment_service.blob_store(ctx.settings)
    with store.writer(max_bytes=limit) as writer:
        try:
            upload = await read_upload(request.stream(), content_type=content_type, writer=writer)
        except BlobTooLarge as exc:
            raise _too_large(limit) from exc
        except BadUpload as exc:
            code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
            if content_type.lower().startswith("multipart/form-data"):
                code = status.HTTP_422_UNPROCESSABLE_CONTENT
            raise HTTPException(code, detail=str(exc)) from exc
        visibility = upload.fields.get("visibility") or (
            "public" if role == "contact" else "partner"
        )
        if visibility not in VISIBILITIES:
            raise Invalid(f"visibility must be one of {', '.join(VISIBILITIES)}")
        if role == "contact" and visibility != "public":
            raise Forbidden("contacts upload public attachments only")
        try:
            stored_type = resolve_content_type(upload.content_type, writer.head)
        except ContentMismatch as exc:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=str(exc)) from exc
        digest = await run_in_threadpool(writer.commit)
        size = writer.size
    attachment_in = AttachmentIn(
        filename=upload.filename or "",
        content_type=stored_type,
        size=size,
        sha256=digest,
        visibility=visibility,  # checked against VISIBILITIES above
    )
    row = await run_in_threadpool(_record_upload, session, ctx, ticket_id, attachment_in, actor)
    return attachment_public(row, role)


@router.get("/{number}/attachments")
def list_attachments(
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    number: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AttachmentList:
    ticket = ticket_service.get_visible(
        session=session, account_id=ctx.account_id, user=user, number=number
    )
    rows = attachment_service.list_visible(session=session, ticket=ticket, user=user)
    page = rows[offset : offset + limit]
    return AttachmentList(
        items=[attachment_public(row, user.role) for row in page], total=len(rows)
    )


@router.get("/{number}/attachments/{attachment_id}", response_class=FileResponse)
def download_attachment(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, number: str, attachment_id: str
) -> FileResponse:
    """The content, always as a download: ``nosniff`` and a sandbox, never rendered inline."""
    ticket = ticket_service.get_visible(
        session=session, account_id=ctx.account_id, user=user, number=number
    )
    row = attachment_service.get_visible(
        session=session, ticket=ticket, user=user, attachment_id=attachment_id
    )
    path = attachment_service.blob_store(ctx.settings).path(row.sha256)
    if not row.stored or not path.is_file():
        raise NotFound("content not fetched yet")
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


class BodyLimits:
    """``BodySizeLimit`` with a larger cap for attachment uploads than for everything else."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, upload_max_bytes: int) -> None:
        self._default = BodySizeLimit(app, max_bytes)
        self._uploads = BodySizeLimit(app, max(max_bytes, upload_max_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and _UPLOAD_PATH.match(scope.get("path", ""))
        ):
            await self._uploads(scope, receive, send)
        else:
            await self._default(scope, receive, send)
