"""User and API-key tables, and their API models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as ApiField
from sqlmodel import Field, SQLModel

from exchange.clock import utcnow

Role = Literal["admin", "dispatcher", "engineer", "contact"]
ROLES: tuple[str, ...] = ("admin", "dispatcher", "engineer", "contact")


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=100)
    full_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=200)
    password_hash: str
    role: str = Field(max_length=20)
    organisation: str | None = Field(default=None, max_length=200, index=True)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=100)
    key_hash: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)
    revoked: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = ApiField(min_length=2, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = ApiField(min_length=8, max_length=200)
    full_name: str = ApiField(default="", max_length=200)
    email: str | None = ApiField(default=None, max_length=200)
    role: Role = "dispatcher"
    organisation: str | None = ApiField(default=None, max_length=200)


class UserPublic(BaseModel):
    id: int
    username: str
    full_name: str
    email: str | None
    role: str
    organisation: str | None
    active: bool


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ApiField(min_length=1, max_length=100)


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    key: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_in: int


class UserUpdate(BaseModel):
    """What an admin may change on a user; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    active: bool | None = None
    full_name: str | None = ApiField(default=None, max_length=200)
    email: str | None = ApiField(default=None, max_length=200)
    organisation: str | None = ApiField(default=None, max_length=200)
    password: str | None = ApiField(default=None, min_length=8, max_length=200)


class UserList(BaseModel):
    items: list[UserPublic]
    total: int


class ApiKeyPublic(BaseModel):
    """An API key as listed: never the key itself, only its display prefix."""

    id: int
    name: str
    prefix: str
    revoked: bool
    created_at: datetime


class ApiKeyList(BaseModel):
    items: list[ApiKeyPublic]
    total: int
