"""HTTP routes for login, users and API keys (thin: parse, call the service, commit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from account import security
from account.deps import AdminUser, ContextDep, CurrentUser, SessionDep, client_address, commit
from account.users import service as user_service
from account.users.models import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPublic,
    Token,
    User,
    UserCreate,
    UserList,
    UserPublic,
    UserUpdate,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["users"])


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def _key_public(api_key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(api_key, from_attributes=True)


@router.post(
    "/auth/token",
    responses={
        401: {"description": "Incorrect username or password"},
        429: {"description": "Too many failed sign-ins (see Retry-After)"},
    },
)
def login(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """Exchange a username and password for a short-lived access token.

    Failed attempts are throttled per username and client address, and per address
    (``TIX_LOGIN_FAILURES_PER_USER``, ``TIX_LOGIN_FAILURES_PER_ADDRESS``): past the limit the
    answer is 429 with ``Retry-After``, and the password is not checked.
    """
    try:
        user = user_service.sign_in(
            session=session,
            throttle=ctx.login_throttle,
            username=form.username,
            password=form.password,
            address=client_address(request),
        )
    except user_service.SignInThrottled as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=str(exc),
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc
    if user is None:
        # One response for an unknown user, a wrong password and an inactive account.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    minutes = ctx.settings.access_token_minutes
    token = security.create_access_token(
        username=user.username,
        role=user.role,
        secret=ctx.secret,
        account_id=ctx.account_id,
        minutes=minutes,
    )
    return Token(access_token=token, expires_in=minutes * 60)


@router.get("/users/me")
def read_me(user: CurrentUser) -> UserPublic:
    return _public(user)


@router.get("/users")
def list_users(
    session: SessionDep,
    _admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> UserList:
    users, total = user_service.list_users(session=session, limit=limit, offset=offset)
    return UserList(items=[_public(u) for u in users], total=total)


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(
    ctx: ContextDep, session: SessionDep, _admin: AdminUser, user_in: UserCreate
) -> UserPublic:
    user = user_service.create(session=session, user_in=user_in)
    commit(session, ctx)
    return _public(user)


@router.patch("/users/{user_id}")
def update_user(
    ctx: ContextDep,
    session: SessionDep,
    _admin: AdminUser,
    user_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # an id column holds (PostgreSQL integer)
    user_in: UserUpdate,
) -> UserPublic:
    user = user_service.get(session=session, user_id=user_id)
    user = user_service.update(session=session, user=user, user_in=user_in)
    commit(session, ctx)
    return _public(user)


@router.post("/users/me/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(
    ctx: ContextDep, session: SessionDep, user: CurrentUser, key_in: ApiKeyCreate
) -> ApiKeyCreated:
    """Create an API key; the response is the only time the full key is shown."""
    api_key, key = user_service.create_api_key(session=session, user=user, key_in=key_in)
    commit(session, ctx)
    if api_key.id is None:  # flushed and committed, so the id is set
        raise RuntimeError("API key has no id after commit")
    return ApiKeyCreated(id=api_key.id, name=api_key.name, key=key)


@router.get("/users/me/api-keys")
def list_api_keys(session: SessionDep, user: CurrentUser) -> ApiKeyList:
    keys = user_service.list_api_keys(session=session, user=user)
    return ApiKeyList(items=[_key_public(k) for k in keys], total=len(keys))


@router.delete("/users/me/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(
    ctx: ContextDep,
    session: SessionDep,
    user: CurrentUser,
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # an id column holds (PostgreSQL integer)
) -> Response:
    user_service.revoke_api_key(session=session, user=user, key_id=key_id)
    commit(session, ctx)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
