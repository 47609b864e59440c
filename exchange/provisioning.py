"""Broker-level identity: one RabbitMQ user per account, allowed only its own part of the exchange.

The hub (or an operator) provisions each account through the RabbitMQ management HTTP API with
an administrator's credentials. An account's broker user is named exactly like the account, so
the ``user_id`` property RabbitMQ validates on every publish *is* the sending account id:

* **configure** ``^$``: the node declares, deletes and binds nothing. Its topology (the shared
  exchanges, its inbox and dead-letter queue, their bindings) is declared here, once, as the
  administrator, by the one topology module (``exchange.amqp.AmqpTransport.declare_inbox``);
  the provisioned node only checks it passively (``AmqpTransport(broker_identity=True)``).
  Letting a node configure its own queues was refused on purpose: binding needs read on the
  exchange, and a node that can bind can bind its queue to another account's routing key.
* **write** ``tix.exchange`` (to send to any account: the receiver checks the link) and
  ``tix.dead`` (to dead-letter what it refuses), with topic permissions narrowing ``tix.dead``
  to its own routing key, so it cannot fill another account's dead-letter queue.
* **read** only ``tix.inbox.<account>`` and ``tix.dead.<account>``: it can consume nothing else.

RabbitMQ refuses a publish whose ``user_id`` is not the connection's user (406
PRECONDITION_FAILED), refuses reading, declaring or binding outside the permissions (403
ACCESS_REFUSED), and the receiving inbox compares the validated ``user_id`` with the signed
``from`` (``key_sender_mismatch``), so a node cannot pose as another even before signatures are
checked. See ``docs/security.md``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from exchange.amqp import AmqpTransport
from exchange.errors import ExchangeError
from exchange.transport import DEAD_EXCHANGE_NAME, EXCHANGE_NAME, dead_queue, inbox_queue

__all__ = [
    "BrokerAdmin",
    "BrokerUser",
    "ProvisioningError",
    "account_url",
    "permissions_for",
    "topic_permissions_for",
]

HTTP_TIMEOUT = 15.0
# The account id rule of ARCHITECTURE §3; it is also the broker user name.
ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def _check_account(account_id: str) -> None:
    if not ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(f"not an account id: {account_id!r}")


class ProvisioningError(ExchangeError):
    """The management API refused or failed a provisioning request."""


@dataclass(frozen=True)
class BrokerUser:
    """An account's broker credentials; the password is shown once, at provisioning."""

    account_id: str
    password: str
    amqp_url: str


def permissions_for(account_id: str) -> dict[str, str]:
    """The vhost permissions (regular expressions) of an account's broker user."""
    _check_account(account_id)
    own = "|".join(
        f"^{re.escape(name)}$" for name in (inbox_queue(account_id), dead_queue(account_id))
    )
    return {
        "configure": "^$",
        "write": f"^{re.escape(EXCHANGE_NAME)}$|^{re.escape(DEAD_EXCHANGE_NAME)}$",
        "read": own,
    }


def topic_permissions_for(account_id: str) -> list[dict[str, str]]:
    """Routing keys the user may publish with, per topic exchange (nothing to bind: ``^$``)."""
    _check_account(account_id)
    return [
        {"exchange": EXCHANGE_NAME, "write": ".*", "read": "^$"},
        {"exchange": DEAD_EXCHANGE_NAME, "write": f"^{re.escape(account_id)}$", "read": "^$"},
    ]


def account_url(admin_amqp_url: str, account_id: str, password: str) -> str:
    """``admin_amqp_url`` with the account's credentials in place of the administrator's."""
    parts = urlsplit(admin_amqp_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(account_id, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


class BrokerAdmin:
    """Provisioning through the management API (``management_url``) and AMQP (topology)."""

    def __init__(
        self,
        management_url: str,
        *,
        amqp_url: str,
        username: str,
        password: str,
        vhost: str = "/",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._amqp_url = amqp_url
        self._vhost = vhost
        self._http = client or httpx.AsyncClient(
            base_url=management_url.rstrip("/"),
            auth=(username, password),
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> BrokerAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _call(self, method: str, path: str, json: object | None = None) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ProvisioningError(f"management API unreachable: {exc!r}") from exc
        if response.status_code >= 400:
            raise ProvisioningError(
                f"{method} {path} answered {response.status_code}: {response.text[:200]}"
            )
        return response

    def _vhost_path(self) -> str:
        return quote(self._vhost, safe="")

    async def provision(self, account_id: str, *, password: str | None = None) -> BrokerUser:
        """Create or update the account's broker user, its permissions and its topology."""
        _check_account(account_id)
        password = password or secrets.token_urlsafe(32)
        user = quote(account_id, safe="")
        vhost = self._vhost_path()
        await self._call("PUT", f"/api/users/{user}", {"password": password, "tags": ""})
        await self._call("PUT", f"/api/permissions/{vhost}/{user}", permissions_for(account_id))
        for topic in topic_permissions_for(account_id):
            await self._call("PUT", f"/api/topic-permissions/{vhost}/{user}", topic)
        admin = AmqpTransport(self._amqp_url)
        await admin.connect()
        try:
            await admin.declare_inbox(account_id)
        finally:
            await admin.close()
        return BrokerUser(account_id, password, account_url(self._amqp_url, account_id, password))

    async def deprovision(self, account_id: str) -> None:
        """Delete the account's broker user (its queues stay until deleted on purpose)."""
        _check_account(account_id)
        await self._call("DELETE", f"/api/users/{quote(account_id, safe='')}")

    async def permissions(self, account_id: str) -> dict[str, str]:
        """The vhost permissions the broker holds for the account's user."""
        user = quote(account_id, safe="")
        response = await self._call("GET", f"/api/permissions/{self._vhost_path()}/{user}")
        data = response.json()
        return {key: str(data[key]) for key in ("configure", "write", "read")}
