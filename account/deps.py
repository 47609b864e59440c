"""FastAPI dependencies as ``Annotated`` aliases: the node context, a DB session, the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from account.context import NodeContext
from account.db import read_session
from account.users import service as user_service
from account.users.models import User

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_context(request: Request) -> NodeContext:
    ctx: NodeContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[NodeContext, Depends(get_context)]


# Methods that must not change anything (RFC 9110, "safe methods"): their requests read.
READ_METHODS = frozenset({"GET", "HEAD"})


def get_session(request: Request, ctx: ContextDep) -> Iterator[Session]:
    """A session per request, chosen by the request's method; the caller's dependencies
    (``get_current_user``, ``account.web.deps.web_user``) share it with the view.

    GET and HEAD read (``account.db.read_session``): on SQLite from a small pool of
    ``query_only`` reader connections, one WAL snapshot per transaction, so a page never
    queues for the node's one write connection (held by an inbox apply or another request's
    transaction under ``BEGIN IMMEDIATE``) and never holds it up; on PostgreSQL a read-only
    ``REPEATABLE READ`` transaction. A write there fails (a 500), on both databases alike: a
    GET that has to write says so with ``WriteSessionDep``.

    Every other method gets the write session; views commit explicitly (``commit``),
    anything else rolls back. Choosing by method rather than by a dependency on each view
    means a new GET route cannot take the write connection by accident, and its
    authentication reads through the same read session as the view.
    """
    if request.method in READ_METHODS:
        with read_session(ctx.engine) as session:
            yield session
    else:
        with Session(ctx.engine, expire_on_commit=False) as session:
            yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_write_session(ctx: ContextDep) -> Iterator[Session]:
    """The write session whatever the method: for a GET view that must write (none does
    today). Its authentication still reads from the request's read session."""
    with Session(ctx.engine, expire_on_commit=False) as session:
        yield session


WriteSessionDep = Annotated[Session, Depends(get_write_session)]


def client_address(request: Request) -> str:
    """The client's address as the server saw it (uvicorn applies ``X-Forwarded-For`` only from
    the proxies it trusts, ``--forwarded-allow-ips``)."""
    return request.client.host if request.client is not None else "unknown"


def commit(session: Session, ctx: NodeContext) -> None:
    """Commit the request's transaction, then wake the outbox relay for what it wrote."""
    session.commit()
    ctx.wake_relay()


_UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="not authenticated",
    headers={"WWW-Authenticate": "Bearer"},
)


def get_current_user(
    ctx: ContextDep, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    if not token:
        raise _UNAUTHORIZED
    user = user_service.authenticate_bearer(
        session=session, token=token, secret=ctx.secret, account_id=ctx.account_id
    )
    if user is None:
        raise _UNAUTHORIZED
    # End the read before the view runs (in another pool thread): the connection (on SQLite
    # the single write connection, or one of the few readers) is not held across that hop
    # (account/http_limit.py).
    session.commit()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[User], User]:
    """A dependency that lets only the given roles through (403 for the others)."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="not allowed for your role")
        return user

    return check


StaffUser = Annotated[User, Depends(require_roles("admin", "dispatcher", "engineer"))]
DispatcherUser = Annotated[User, Depends(require_roles("admin", "dispatcher"))]
AdminUser = Annotated[User, Depends(require_roles("admin"))]
