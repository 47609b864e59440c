"""Settings of an e-mail adapter process, from ``TIX_*`` variables (ARCHITECTURE §9)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}$")


class MailSettings(BaseSettings):
    """``TIX_MAIL_DOMAIN``, ``TIX_SMTP_URL``, ``TIX_SMTP_LISTEN``, ``TIX_IMAP_URL`` and friends."""

    model_config = SettingsConfigDict(env_prefix="TIX_", extra="ignore")

    mail_domain: str = "tix.localhost"
    mail_local: str = "tix"
    smtp_url: str = "smtp://127.0.0.1:2525"
    smtp_listen: str = ""
    imap_url: str = ""
    imap_poll_seconds: float = Field(default=30.0, gt=0)
    mail_poll_seconds: float = Field(default=0.5, gt=0)
    mail_max_backoff_seconds: float = Field(default=60.0, gt=0)
    polite_replies_per_hour: int = Field(default=3, ge=0)
    # The backstop against loops no header gives away (two systems acknowledging each other):
    # more mails than this from one sender in an hour are logged, not applied.
    mails_per_sender_per_hour: int = Field(default=120, ge=1)
    # authserv-ids of the receiving MTA whose Authentication-Results are trusted (dmarc=fail
    # then refuses the mail); headers of any other id are the sender's and ignored.
    mail_trusted_authserv_ids: list[str] = Field(default_factory=list)

    @field_validator("mail_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DOMAIN_RE.match(value):
            raise ValueError("TIX_MAIL_DOMAIN must be a domain name")
        return value

    @property
    def from_address(self) -> str:
        return f"{self.mail_local}@{self.mail_domain}"


@dataclass(frozen=True)
class Endpoint:
    """A parsed ``smtp://`` / ``imap://`` URL (``smtps``/``imaps`` for TLS)."""

    scheme: str
    host: str
    port: int
    username: str = ""
    password: str = ""
    path: str = ""

    @property
    def tls(self) -> bool:
        return self.scheme.endswith("s")


_DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "imap": 143, "imaps": 993}


def endpoint(url: str) -> Endpoint:
    """Parse ``smtp://user:pass@host:port`` or ``imap://user:pass@host:port/INBOX``."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an smtp(s):// or imap(s):// URL: {url.split('@')[-1]}")
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        path=unquote(parts.path.lstrip("/")),
    )


def listen_address(value: str) -> tuple[str, int]:
    """``host:port`` of the inbound listener."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("TIX_SMTP_LISTEN must be host:port")
    return host.strip("[]"), int(port)


def reply_secret(node_secret: bytes) -> bytes:
    """The reply-token secret, derived from the node's secret (one secret to keep)."""
    return hmac.new(node_secret, b"tix-email-reply-tokens", hashlib.sha256).digest()
