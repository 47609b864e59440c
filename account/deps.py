"""FastAPI dependencies as ``Annotated`` aliases: the node context, a DB session, the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from account.context import NodeContext
from account.users import service as user_service
from account.users.models import User

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_context(request: Request) -> NodeContext:
    ctx: NodeContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[NodeContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """A session per request; views commit explicitly (``commit``), anything else rolls back."""
    with Session(ctx.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


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
    # End the read before the view runs (in another pool thread): the (single SQLite)
    # connection is not held across that hop (account/http_limit.py).
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
