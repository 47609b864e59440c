"""The hub's HTTP API (``/hub/v1``): directory, invitations, dead letters, audit.

Nodes authenticate every request with a token signed by their account key
(``exchange.hub.requests``); the operator endpoints take ``Authorization: Bearer
<TIX_HUB_OPERATOR_TOKEN>``. Errors are ``{"detail": …}`` and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import Session

from exchange.errors import TransportError
from exchange.hub import audit, deadletters, directory, invitations
from exchange.hub.config import HubSettings
from exchange.hub.errors import Forbidden, HubError, Invalid, TooLarge, Unauthorized
from exchange.hub.models import DirectoryEntry, upgrade_schema
from exchange.hub.tap import AuditTap

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 64 * 1024


def make_engine(settings: HubSettings) -> Engine:
    url = settings.db_url
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    else:
        engine = create_engine(url, pool_pre_ping=True)
    upgrade_schema(engine)
    return engine


def _bearer(request: Request) -> str:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a bearer token is required")
    return token.strip()


async def _body(request: Request) -> bytes:
    """The request body, read at most once and never past ``MAX_BODY`` (413 beyond it)."""
    cached = getattr(request.state, "hub_body", None)
    if isinstance(cached, bytes):
        return cached
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge(f"body over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge(f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.hub_body = body
    return body


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"{where}: {first['msg']}"[:300]) from exc


def create_app(settings: HubSettings, *, engine: Engine | None = None) -> FastAPI:
    db = engine or make_engine(settings)
    tap = AuditTap(
        settings.amqp_url,
        db,
        retention_days=settings.audit_retention_days,
        max_rows=settings.audit_max_rows,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(tap.run()) if settings.audit_tap else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="Tix exchange hub", version="1", lifespan=lifespan)
    app.state.engine = db
    app.state.tap = tap

    @app.exception_handler(HubError)
    async def _hub_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HubError)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @contextlib.contextmanager
    def session() -> Iterator[Session]:
        with Session(db) as s:
            try:
                yield s
            except BaseException:
                s.rollback()
                raise

    def operator(request: Request) -> None:
        expected = settings.operator_token.get_secret_value()
        if not expected:
            raise Forbidden("operator endpoints are disabled (no TIX_HUB_OPERATOR_TOKEN)")
        if not hmac.compare_digest(_bearer(request).encode(), expected.encode()):
            raise Unauthorized("not the operator token")

    async def signed(
        request: Request, s: Session, *, registration_key: str | None = None
    ) -> directory.SignedBy:
        body = await _body(request)
        return directory.authenticate(
            s,
            token=_bearer(request),
            method=request.method,
            path=request.url.path,
            body=body,
            registration_key=registration_key,
        )

    def registered(signer: directory.SignedBy) -> DirectoryEntry:
        if signer.entry is None:
            raise Forbidden("register the account first")
        return signer.entry

    def _labels(s: Session, accounts: set[str]) -> dict[str, str]:
        entries = (s.get(DirectoryEntry, account) for account in sorted(accounts))
        return {e.account_id: e.display_name for e in entries if e is not None}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "audit_tap": "up" if tap.running.is_set() else "down"}

    # -- directory -------------------------------------------------------------------------

    @app.put("/hub/v1/directory/self")
    async def register(request: Request) -> dict[str, Any]:
        """Register or update the signing account (first registration pins its key)."""
        body = await _body(request)
        registration = _parse(directory.Registration, body)
        with session() as s:
            signer = await signed(request, s, registration_key=registration.public_key)
            entry = directory.register(s, signer=signer, registration=registration)
            s.commit()
            return directory.to_public(entry)

    @app.get("/hub/v1/directory")
    async def search(
        request: Request,
        q: str = Query(default="", max_length=100),
        limit: int = Query(default=50, ge=1, le=200),
    ) -> dict[str, Any]:
        with session() as s:
            if request.headers.get("authorization", "").count(".") == 2:
                registered(await signed(request, s))
                s.commit()
            else:
                operator(request)
            entries = directory.search(s, query=q, limit=limit)
            return {"items": [directory.to_public(e) for e in entries], "total": len(entries)}

    @app.delete("/hub/v1/directory/{account_id}", status_code=204)
    def remove(request: Request, account_id: str) -> None:
        """Operator: drop an entry (say, an id registered by someone else first) and its
        pending invitations; the next registration of the id pins a key again."""
        operator(request)
        with session() as s:
            directory.remove(s, account_id=account_id)
            s.commit()

    # -- invitations -----------------------------------------------------------------------

    @app.post("/hub/v1/invitations", status_code=201)
    async def send_invitation(request: Request) -> dict[str, Any]:
        body = await _body(request)
        send_in = _parse(invitations.InvitationSend, body)
        with session() as s:
            sender = registered(await signed(request, s))
            invitation = invitations.send(s, sender=sender, send_in=send_in)
            s.commit()
            return {"id": invitation.id, "to": invitation.to_account}

    @app.get("/hub/v1/invitations/pending")
    async def pending(request: Request) -> dict[str, Any]:
        with session() as s:
            me = registered(await signed(request, s))
            rows = invitations.pending_for(s, account=me.account_id)
            labels = _labels(s, {r.from_account for r in rows})
            s.commit()
            return {"items": [invitations.to_public(r, labels) for r in rows]}

    @app.get("/hub/v1/invitations/sent")
    async def sent(request: Request) -> dict[str, Any]:
        """The signer's invitations with their state and answer (never a token)."""
        with session() as s:
            me = registered(await signed(request, s))
            invitations.prune(s)
            rows = invitations.sent_by(s, account=me.account_id)
            labels = _labels(s, {r.to_account for r in rows})
            s.commit()
            return {"items": [invitations.to_sender(r, labels) for r in rows]}

    @app.post("/hub/v1/invitations/{invitation_id}/decision")
    async def decide(request: Request, invitation_id: str) -> dict[str, Any]:
        """The recipient's answer (accepted, or declined with a reason) for the sender."""
        body = await _body(request)
        decision = _parse(invitations.Decision, body)
        with session() as s:
            me = registered(await signed(request, s))
            row = invitations.decide(
                s, account=me.account_id, invitation_id=invitation_id, decision=decision
            )
            s.commit()
            return {"id": row.id, "state": row.state, "reason": row.reason}

    @app.delete("/hub/v1/invitations/{invitation_id}", status_code=204)
    async def dismiss(request: Request, invitation_id: str) -> None:
        """The recipient takes a pending invitation without an answer; the sender withdraws
        one, or forgets one whose answer it has read."""
        with session() as s:
            me = registered(await signed(request, s))
            invitations.dismiss(s, account=me.account_id, invitation_id=invitation_id)
            s.commit()

    # -- dead letters (operator) -----------------------------------------------------------

    def _accounts(s: Session, account: str | None) -> list[str]:
        names = directory.accounts(s, transport="amqp")
        if account is None:
            return names
        if account not in names:
            raise Invalid(f"{account} is not an amqp account in the directory")
        return [account]

    @app.get("/hub/v1/dead-letters")
    async def dead_letters(
        request: Request,
        account: str | None = Query(default=None, max_length=63),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        operator(request)
        with session() as s:
            names = _accounts(s, account)
        try:
            items = await deadletters.list_all(settings.amqp_url, names, limit=limit)
        except TransportError as exc:
            return JSONResponse({"detail": f"broker unavailable: {exc}"}, status_code=503)  # type: ignore[return-value]
        return {"items": items}

    @app.post("/hub/v1/dead-letters/replay")
    async def replay(
        request: Request,
        account: str | None = Query(default=None, max_length=63),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        operator(request)
        with session() as s:
            names = _accounts(s, account)
        try:
            moved = await deadletters.replay(settings.amqp_url, names, limit=limit)
        except TransportError as exc:
            return JSONResponse({"detail": f"broker unavailable: {exc}"}, status_code=503)  # type: ignore[return-value]
        return {"replayed": moved, "total": sum(moved.values())}

    # -- audit (operator) ------------------------------------------------------------------

    @app.get("/hub/v1/audit/accounts")
    def audit_accounts(request: Request) -> dict[str, Any]:
        operator(request)
        with session() as s:
            rows = audit.per_account(s)
        return {
            "items": [
                {"account": r.account, "sent": r.sent, "received": r.received, "failed": r.failed}
                for r in rows
            ]
        }

    @app.get("/hub/v1/audit/events")
    def audit_events(
        request: Request,
        account: str | None = Query(default=None, max_length=63),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        operator(request)
        with session() as s:
            rows = audit.events(s, account=account, limit=limit)
            return {"items": [audit.event_to_public(r) for r in rows]}

    return app
