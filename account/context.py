"""What a running node hands its views and services: settings, engine, identity, wake-ups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from account.config import Settings
from account.users.throttle import LoginThrottle
from exchange.signing import kid_of, public_key_b64


@dataclass(frozen=True)
class Identity:
    """A hosted account: its id, display name and signing key."""

    account_id: str
    label: str
    key: Ed25519PrivateKey

    @property
    def kid(self) -> str:
        return kid_of(self.key.public_key())

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key)


def _nothing() -> None:
    return None


@dataclass
class NodeContext:
    """Everything request handlers need; built once by the node and stored on ``app.state``."""

    settings: Settings
    engine: Engine
    identity: Identity
    secret: bytes
    wake_relay: Callable[[], None] = field(default=_nothing)
    status: dict[str, str] = field(default_factory=dict)
    # Failed password sign-ins of this node's users (in memory; account/users/throttle.py).
    login_throttle: LoginThrottle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.login_throttle = LoginThrottle(
            per_user=self.settings.login_failures_per_user,
            per_address=self.settings.login_failures_per_address,
            window_seconds=self.settings.login_failure_window_seconds,
        )

    @property
    def account_id(self) -> str:
        return self.identity.account_id
