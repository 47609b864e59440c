"""The hub's settings, from ``TIX_HUB_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class HubSettings(BaseSettings):
    """Configuration of one hub process; built once at start and passed in."""

    model_config = SettingsConfigDict(env_prefix="TIX_HUB_", extra="ignore")

    # SQLite by default; postgresql://… works as well (psycopg 3).
    database_url: str = "sqlite:///data/hub.db"
    # The broker administrator's URL: the audit tap and dead-letter replay use it.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Bearer token for the operator endpoints (dead letters, audit); "" disables them.
    operator_token: SecretStr = SecretStr("")
    # Whether this process consumes the audit tap queues.
    audit_tap: bool = True
    audit_retention_days: int = Field(default=30, ge=1, le=3650)
    audit_max_rows: int = Field(default=1_000_000, ge=100)
    # How long a delivered but unanswered invitation stays at the hub.
    invitation_days: int = Field(default=30, ge=1, le=365)

    @property
    def db_url(self) -> str:
        url = self.database_url
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
