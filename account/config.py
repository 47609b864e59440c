"""Settings of one account node, from ``TIX_*`` environment variables."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exchange.egress import EgressPolicy, parse_allow

ACCOUNT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# An absolute http(s) URL with a host and no user info, query or fragment (partner API bases).
HTTP_URL_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/\-]*)?$")


class Settings(BaseSettings):
    """Configuration of a node; built once at start and passed in, never read at import time."""

    model_config = SettingsConfigDict(env_prefix="TIX_", extra="ignore")

    account_id: str = "acme"
    display_name: str = ""
    data_dir: Path = Path("data")
    database_url: str = ""
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    transport: Literal["amqp", "inprocess"] = "amqp"
    # The amqp_url's user is this account's own broker user (``tix exchange provision``): every
    # publish carries it as the validated AMQP user_id, and an inbound message whose user_id is
    # not its signed sender is rejected (docs/security.md).
    broker_identity: bool = False
    key_file: Path | None = None
    secret: SecretStr | None = None
    access_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # Failed password sign-ins (API token and web login) in a sliding window: per username and
    # client address, then per client address for any username; 0 turns a limit off
    # (account/users/throttle.py, docs/security.md).
    login_failures_per_user: int = Field(default=5, ge=0, le=1000)
    login_failures_per_address: int = Field(default=50, ge=0, le=100_000)
    login_failure_window_seconds: int = Field(default=900, ge=1, le=86_400)
    max_clock_skew_seconds: int = Field(default=300, ge=0, le=3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    relay_max_backoff_seconds: float = Field(default=30.0, gt=0)
    # How often the SLA scheduler looks for checks that fell due (account/sla/scheduler.py).
    sla_tick_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Attachments: content up to ``attachment_inline_bytes`` travels inside the message (the
    # envelope cap of 256 KiB bounds it), larger content is fetched by digest from the partner;
    # nothing over ``attachment_max_bytes`` is accepted, uploaded or fetched.
    attachment_inline_bytes: int = Field(default=64 * 1024, ge=0, le=128 * 1024)
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    # This node's base URL as partners reach it (carried in invitations and link.accept); ""
    # means partners cannot fetch large attachments from us.
    public_url: str = ""
    # The exchange hub's base URL (``tix exchange serve``): directory and invitations via the
    # hub (account/hub); "" means this node works without a hub.
    hub_url: str = ""
    # Networks and host names beyond the public Internet that this node may connect to when
    # someone else chose the URL (a partner's API for attachments, a TMF client's callback):
    # e.g. "10.20.0.0/16, partner.internal". Loopback and private ranges are refused unless
    # listed here (exchange/egress.py, RELIABILITY B18).
    egress_allow: str = ""
    # How often the node asks the hub for invitations waiting for it (the count shown next to
    # "Partners" in the web UI; account/hub/poller.py); 0 turns the polling off.
    hub_poll_seconds: float = Field(default=60.0, ge=0, le=24 * 3600)
    # Logging: level name and format ("json": one object a line with ticket/delegation/message
    # ids and the trace id where known; see account/observability/logs.py).
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # OpenTelemetry spans (needs the ``otel`` extra; the OTEL_* variables choose the exporter):
    # account/observability/otel.py.
    otel: bool = False

    @field_validator("account_id")
    @classmethod
    def _account_id(cls, value: str) -> str:
        if not ACCOUNT_ID_RE.match(value):
            raise ValueError("account id must match ^[a-z0-9][a-z0-9-]{1,62}$")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not HTTP_URL_RE.match(value):
            raise ValueError("public url must be an http(s) URL without credentials")
        return value

    @field_validator("hub_url")
    @classmethod
    def _hub_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not HTTP_URL_RE.match(value):
            raise ValueError("hub url must be an http(s) URL without credentials")
        return value

    @field_validator("egress_allow")
    @classmethod
    def _egress_allow(cls, value: str) -> str:
        parse_allow(value)
        return value

    @property
    def egress_policy(self) -> EgressPolicy:
        return parse_allow(self.egress_allow)

    @property
    def db_url(self) -> str:
        """SQLAlchemy URL: ``TIX_DATABASE_URL`` or SQLite under the data directory."""
        url = self.database_url or f"sqlite:///{self.data_dir / (self.account_id + '.db')}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def key_path(self) -> Path:
        return self.key_file or self.data_dir / f"{self.account_id}.key"

    @property
    def secret_path(self) -> Path:
        return self.data_dir / f"{self.account_id}.secret"

    @property
    def label(self) -> str:
        return self.display_name or self.account_id


def load_secret(settings: Settings) -> bytes:
    """The HMAC secret for user tokens: ``TIX_SECRET`` or a generated file (0600) in data_dir."""
    if settings.secret is not None:
        value = settings.secret.get_secret_value().encode()
        if len(value) < 32:
            raise ValueError("TIX_SECRET must be at least 32 bytes")
        return value
    path = settings.secret_path
    if not path.exists():
        import os

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()
