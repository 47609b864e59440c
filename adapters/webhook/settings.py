"""Settings of the webhook adapter, from ``TIX_WEBHOOK_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIX_WEBHOOK_", extra="ignore")

    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    retry_initial_seconds: float = Field(default=1.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86_400)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # How far a signature's timestamp may be from now, either way, in seconds.
    tolerance_seconds: int = Field(default=300, ge=10, le=3600)
    # Comma-separated hosts the help desks' URLs may name (".example.com" for a domain).
    url_hosts: str = ""

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.url_hosts.split(",") if h.strip())
