"""Settings of the TMF621 facade, from ``TIX_TMF_*`` environment variables (built at start)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TmfSettings(BaseSettings):
    """Event delivery and the callback egress rule."""

    model_config = SettingsConfigDict(env_prefix="TIX_TMF_", extra="ignore")

    # Comma-separated hosts listener callbacks may name (``.example.com`` for a domain);
    # empty allows any host. Only http and https URLs are ever accepted.
    callback_hosts: str = ""
    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    retry_initial_seconds: float = Field(default=1.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86_400)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # How long a timeline id the notifier skipped (a transaction not committed yet) is awaited.
    gap_seconds: float = Field(default=300.0, gt=0, le=86_400)
    batch: int = Field(default=200, ge=1, le=5000)

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.callback_hosts.split(",") if h.strip())
