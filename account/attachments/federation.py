"""Large attachments by digest between linked nodes: the owner's endpoint and the fetcher.

``GET /api/v1/federation/attachments/{sha256}`` serves stored content to a partner that
proves who it is with a node token (``account.attachments.tokens``) verified against the key
pinned on an active link with it, and only when the digest belongs to a shareable attachment
of a ticket with a delegation on such a link: a partner cannot read arbitrary blobs. Every
authentication failure answers the same 401; content outside the partner's scope, or not
here yet, answers 404.

``fetch_pending`` runs in the node's background loop: for every attachment recorded without
content whose source link has an API URL, it fetches the content from that partner with a
fresh token, over plain httpx with connect and read timeouts, an overall deadline, no
redirects, no proxies from the environment and a size cap while streaming, and keeps it only
if its SHA-256 matches. Failures back off exponentially and are given up after
``MAX_FETCH_TRIES`` (``fetch_error`` says why). The connection goes only where the node's
egress policy allows (``TIX_EGRESS_ALLOW``, ``exchange.egress``): a partner cannot make the node
fetch from its own loopback, the metadata service or the operator's private network (B18).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Header, HTTPException, Path, Request, status
from fastapi.responses import FileResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from account.attachments import service as attachment_service
from account.attachments.blobs import BlobError, BlobStore, is_digest
from account.attachments.models import Attachment
from account.attachments.tokens import (
    NodeTokenError,
    SeenTokens,
    federation_audience,
    mint_node_token,
    read_node_token,
)
from account.config import HTTP_URL_RE, Settings
from account.context import Identity
from account.delegations.models import Delegation
from account.deps import ContextDep, SessionDep
from account.links.models import Link
from exchange.clock import utcnow
from exchange.egress import EgressPolicy, GuardedTransport
from exchange.signing import public_key_from_b64

__all__ = ["FetchError", "fetch_blob", "fetch_loop", "fetch_pending", "router"]

log = logging.getLogger("tix.attachments")

MAX_FETCH_TRIES = 15
FETCH_BATCH = 20
CHUNK = 64 * 1024

router = APIRouter(prefix="/api/v1/federation", tags=["federation"])

_UNAUTHENTICATED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="not authenticated",
    headers={"WWW-Authenticate": "Bearer"},
)
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


def _seen_tokens(request: Request) -> SeenTokens:
    seen = getattr(request.app.state, "node_token_jtis", None)
    if not isinstance(seen, SeenTokens):
        seen = SeenTokens()
        request.app.state.node_token_jtis = seen
    return seen


def _addressed_account(request: Request, own: str, token: str) -> str:
    """The account the token is addressed to: ours, or one this node hosts (an adapter's).

    Only picks whose pinned keys and scope the verification below uses; the token's signature
    and audience are still checked against that account.
    """
    runtime = getattr(request.app.state, "runtime", None)
    hosted = getattr(runtime, "identities", None) or {}
    if len(hosted) <= 1:
        return own
    try:
        audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return own
    for account in hosted:
        if audience == federation_audience(account):
            return str(account)
    return own


@router.get("/attachments/{sha256}", response_class=FileResponse)
def serve_attachment(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    sha256: Digest,
    authorization: Annotated[str | None, Header(max_length=5_000)] = None,
) -> FileResponse:
    """The content with this digest, for a linked partner that shares a ticket holding it."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _UNAUTHENTICATED
    owner = _addressed_account(request, ctx.account_id, token)
    links = list(
        session.exec(select(Link).where(Link.account_id == owner, Link.state == "active")).all()
    )

    def pinned(issuer: str, kid: str) -> list[Ed25519PublicKey]:
        return [
            public_key_from_b64(link.peer_public_key)
            for link in links
            if link.peer_account == issuer and link.peer_kid == kid
        ]

    try:
        claims = read_node_token(token, audience_account=owner, keys=pinned)
    except NodeTokenError as exc:
        log.info("refused a node token: %s", exc)
        raise _UNAUTHENTICATED from exc
    if claims.subject != sha256 or not _seen_tokens(request).first_use(claims):
        raise _UNAUTHENTICATED
    link_ids = [link.id for link in links if link.peer_account == claims.issuer]
    shared = session.exec(
        select(Attachment.id)
        .join(Delegation, col(Delegation.ticket_id) == col(Attachment.ticket_id))
        .where(
            Attachment.sha256 == sha256,
            Attachment.stored == True,  # noqa: E712  (SQL comparison)
            Attachment.visibility != "internal",
            Delegation.account_id == owner,
            col(Delegation.link_id).in_(link_ids),
        )
        .limit(1)
    ).first()
    path = attachment_service.blob_store(ctx.settings).path(sha256)
    if shared is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="not found")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


# -- fetching ----------------------------------------------------------------------------------


class FetchError(Exception):
    """Fetching content from a partner failed; the message says why (kept on the row)."""


def fetch_blob(
    *,
    base_url: str,
    owner: str,
    sha256: str,
    identity: Identity,
    store: BlobStore,
    max_bytes: int,
    connect_timeout: float = 5.0,
    read_timeout: float = 15.0,
    deadline_seconds: float = 120.0,
    policy: EgressPolicy | None = None,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """Fetch ``sha256`` from ``owner``'s API at ``base_url`` into ``store``, or ``FetchError``.

    Nothing is kept unless the content arrives whole, within ``max_bytes``, with that digest.
    The connection is made only where ``policy`` allows (public addresses by default), unless a
    ``transport`` is given (tests).
    """
    base = base_url.strip().rstrip("/")
    if not HTTP_URL_RE.match(base):
        raise FetchError("partner URL is not an http(s) URL")
    if not is_digest(sha256):
        raise FetchError("not a digest")
    token = mint_node_token(identity=identity, audience_account=owner, subject=sha256)
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    if transport is None:
        transport = GuardedTransport(policy or EgressPolicy())
    started = time.monotonic()
    try:
        with (
            httpx.Client(
                timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
            ) as client,
            client.stream(
                "GET",
                f"{base}/api/v1/federation/attachments/{sha256}",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/octet-stream",
                    # The digest is of the content itself: no transfer compression to undo.
                    "Accept-Encoding": "identity",
                },
            ) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"partner answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError("content over the size limit")
            with store.writer(max_bytes=max_bytes) as writer:
                for chunk in response.iter_raw(CHUNK):
                    writer.write(chunk)
                    if time.monotonic() - started > deadline_seconds:
                        raise FetchError("partner too slow")
                writer.commit(expected_sha256=sha256)
    except BlobError as exc:
        raise FetchError(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}"[:200]) from exc


@dataclass(frozen=True)
class _Pending:
    sha256: str
    base_url: str
    owner: str


def fetch_pending(
    engine: Engine,
    identity: Identity,
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Fetch the content of attachments due for it; return how many digests arrived."""
    store = attachment_service.blob_store(settings)
    now = utcnow()
    with Session(engine) as session:
        rows = session.exec(
            select(Attachment.sha256, Link.peer_api_url, Link.peer_account)
            .join(Delegation, col(Delegation.id) == col(Attachment.source_delegation_id))
            .join(Link, col(Link.id) == col(Delegation.link_id))
            .where(
                Attachment.stored == False,  # noqa: E712  (SQL comparison)
                col(Attachment.next_fetch_at).is_not(None),
                col(Attachment.next_fetch_at) <= now,
                Delegation.account_id == identity.account_id,
                Link.state == "active",
                col(Link.peer_api_url).is_not(None),
            )
            .order_by(col(Attachment.next_fetch_at))
            .limit(FETCH_BATCH)
        ).all()
    jobs = {sha: _Pending(sha, str(url), owner) for sha, url, owner in rows}
    fetched = 0
    for job in jobs.values():
        error = None
        if not store.has(job.sha256):
            try:
                fetch_blob(
                    base_url=job.base_url,
                    owner=job.owner,
                    sha256=job.sha256,
                    identity=identity,
                    store=store,
                    max_bytes=settings.attachment_max_bytes,
                    policy=settings.egress_policy,
                    transport=transport,
                )
            except FetchError as exc:
                error = str(exc)
                log.warning("fetching attachment %s from %s failed: %s", job.sha256, job.owner, exc)
        fetched += _record_fetch(engine, store, job.sha256, error)
    return fetched


def _record_fetch(engine: Engine, store: BlobStore, sha256: str, error: str | None) -> int:
    """Mark every waiting row with this digest as stored, or schedule its next try."""
    with Session(engine) as session:
        waiting = session.exec(
            select(Attachment).where(Attachment.sha256 == sha256, Attachment.stored == False)  # noqa: E712
        ).all()
        size = store.path(sha256).stat().st_size if error is None and store.has(sha256) else None
        for row in waiting:
            if size is not None and size == row.size:
                row.stored, row.next_fetch_at, row.fetch_error = True, None, None
            elif size is not None:
                # The partner announced another size for these bytes: no retry can fix that.
                row.fetch_error, row.next_fetch_at = "size does not match the announced size", None
            else:
                row.fetch_tries += 1
                row.fetch_error = (error or "content did not arrive")[:300]
                if row.fetch_tries >= MAX_FETCH_TRIES:
                    row.next_fetch_at = None  # given up: fetch_error says why
                else:
                    delay = min(5 * 2 ** (row.fetch_tries - 1), 3600)
                    row.next_fetch_at = utcnow() + timedelta(seconds=delay)
            session.add(row)
        session.commit()
    return 1 if error is None else 0


async def fetch_loop(
    engine: Engine, identity: Identity, settings: Settings, *, interval: float = 2.0
) -> None:
    """Run ``fetch_pending`` every ``interval`` seconds until cancelled."""
    while True:
        try:
            await asyncio.to_thread(fetch_pending, engine, identity, settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is away: try again next round
            log.exception("attachment fetch round failed")
        await asyncio.sleep(interval)
