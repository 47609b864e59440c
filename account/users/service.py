"""Users and API keys: creation, lookup, authentication by password, token or key."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from account import security
from account.errors import Conflict, Invalid, InvalidCredentials, NotFound
from account.users.models import ApiKey, ApiKeyCreate, User, UserCreate, UserUpdate
from account.users.throttle import LoginThrottle

__all__ = [
    "UserExists",
    "authenticate_bearer",
    "authenticate_password",
    "create",
    "create_api_key",
    "ensure_admin",
    "get",
    "get_by_username",
    "list_api_keys",
    "list_users",
    "revoke_api_key",
    "update",
]


class UserExists(Conflict):
    """A user with that username already exists."""

    default_detail = "a user with that username already exists"


def get(*, session: Session, user_id: int) -> User:
    """The user with id ``user_id``; ``NotFound`` if there is none."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def get_by_username(*, session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


def create(*, session: Session, user_in: UserCreate) -> User:
    """Add a user with a hashed password; ``UserExists`` if the username is taken."""
    if get_by_username(session=session, username=user_in.username) is not None:
        raise UserExists()
    user = User(
        username=user_in.username,
        full_name=user_in.full_name,
        email=user_in.email,
        password_hash=security.hash_password(user_in.password),
        role=user_in.role,
        organisation=user_in.organisation,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race for the username
        raise UserExists() from exc
    return user


def list_users(*, session: Session, limit: int, offset: int) -> tuple[Sequence[User], int]:
    """A page of users ordered by id, and the total count."""
    total = session.exec(select(func.count()).select_from(User)).one()
    users = session.exec(select(User).order_by(col(User.id)).offset(offset).limit(limit)).all()
    return users, total


_NOT_NULL = frozenset({"role", "active", "full_name", "password"})


def _active_admins(session: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == "admin", col(User.active))
    return session.exec(query).one()


def update(*, session: Session, user: User, user_in: UserUpdate) -> User:
    """Apply the fields set in ``user_in``; refuses to remove the last active admin."""
    changes = user_in.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name in _NOT_NULL:
            raise Invalid(f"{name} cannot be null")
    loses_admin = (
        user.role == "admin"
        and user.active
        and (changes.get("role", "admin") != "admin" or changes.get("active", True) is False)
    )
    if loses_admin and _active_admins(session) <= 1:
        raise Conflict("the last active admin cannot be demoted or deactivated")
    password = changes.pop("password", None)
    if password is not None:
        user.password_hash = security.hash_password(password)
    for name, value in changes.items():
        setattr(user, name, value)
    session.add(user)
    session.flush()
    return user


def authenticate_password(*, session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same work whether the user exists)."""
    user = get_by_username(session=session, username=username)
    if user is None:
        security.dummy_verify(password)
        return None
    if not security.verify_password(password, user.password_hash):
        return None
    if not user.active:
        return None
    return user


class SignInThrottled(Exception):
    """Too many failed sign-ins for this username from this address (or from this address)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


def sign_in(
    *, session: Session, throttle: LoginThrottle, username: str, password: str, address: str
) -> User | None:
    """``authenticate_password`` behind the node's sign-in throttle.

    Raises ``SignInThrottled`` without checking the password when the throttle refuses the
    attempt; otherwise counts a failure (None) or clears this username's failures (the user).
    """
    wait = throttle.retry_after(username, address)
    if wait is not None:
        raise SignInThrottled(wait)
    user = authenticate_password(session=session, username=username, password=password)
    if user is None:
        throttle.failed(username, address)
    else:
        throttle.succeeded(username, address)
    return user


def authenticate_bearer(
    *, session: Session, token: str, secret: bytes, account_id: str
) -> User | None:
    """The active user behind a bearer credential (API key or access token), or None."""
    if security.is_api_key(token):
        return _user_of_api_key(session, token)
    try:
        username = security.decode_access_token(token, secret=secret, account_id=account_id)
    except InvalidCredentials:
        return None
    user = get_by_username(session=session, username=username)
    if user is None or not user.active:
        return None
    return user


def _user_of_api_key(session: Session, key: str) -> User | None:
    if not security.well_formed_api_key(key):
        return None
    api_key = session.exec(
        select(ApiKey).where(ApiKey.key_hash == security.api_key_hash(key))
    ).first()
    if api_key is None or api_key.revoked:
        return None
    user = session.get(User, api_key.user_id)
    if user is None or not user.active:
        return None
    return user


def create_api_key(*, session: Session, user: User, key_in: ApiKeyCreate) -> tuple[ApiKey, str]:
    """A new API key for ``user``: the stored row and the full key (shown once, never stored)."""
    if user.id is None:
        raise Invalid("the user is not saved yet")
    key, prefix, key_hash = security.new_api_key()
    api_key = ApiKey(user_id=user.id, name=key_in.name, key_hash=key_hash, prefix=prefix)
    session.add(api_key)
    session.flush()
    return api_key, key


def list_api_keys(*, session: Session, user: User) -> Sequence[ApiKey]:
    """The user's API keys, revoked ones included, oldest first."""
    query = select(ApiKey).where(ApiKey.user_id == user.id).order_by(col(ApiKey.id))
    return session.exec(query).all()


def revoke_api_key(*, session: Session, user: User, key_id: int) -> ApiKey:
    """Revoke one of the user's keys (idempotent); ``NotFound`` for another user's key."""
    api_key = session.get(ApiKey, key_id)
    if api_key is None or api_key.user_id != user.id:
        raise NotFound("API key not found")
    api_key.revoked = True
    session.add(api_key)
    session.flush()
    return api_key


def ensure_admin(*, session: Session, username: str, password: str) -> User:
    """The admin ``username``, created if missing; an existing user is left untouched."""
    existing = get_by_username(session=session, username=username)
    if existing is not None:
        return existing
    return create(
        session=session,
        user_in=UserCreate(username=username, password=password, role="admin"),
    )
