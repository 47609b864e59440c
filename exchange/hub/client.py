"""A node's client of the hub: every request signed with the account's own key."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.hub.requests import sign_request

TIMEOUT = 15.0


class HubUnavailable(RuntimeError):
    """The hub could not be reached or answered with a server error."""


class HubRefused(RuntimeError):
    """The hub answered 4xx; ``status`` and ``detail`` say why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"hub refused ({status}): {detail}")
        self.status = status
        self.detail = detail


class HubClient:
    def __init__(
        self, base_url: str, *, account: str, key: Ed25519PrivateKey, timeout: float = TIMEOUT
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._prefix = urlsplit(self._base).path.rstrip("/")
        self._account = account
        self._key = key

    async def _call(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        data = b"" if body is None else json.dumps(body).encode()
        token = sign_request(
            key=self._key, account=self._account, method=method, path=self._prefix + path, body=data
        )
        headers = {"Authorization": f"Bearer {token}"}
        if data:
            headers["Content-Type"] = "application/json"
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.request(
                    method, self._base + path, content=data, headers=headers, params=params
                )
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"hub unreachable: {exc!r}") from exc
        if response.status_code >= 500:
            raise HubUnavailable(f"hub error {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            raise HubRefused(response.status_code, detail)
        return response.json() if response.content else None

    async def register(
        self,
        *,
        display_name: str,
        public_key: str,
        transport: str = "amqp",
        api_url: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "display_name": display_name,
            "public_key": public_key,
            "transport": transport,
            "api_url": api_url,
        }
        result: dict[str, Any] = await self._call("PUT", "/hub/v1/directory/self", body=body)
        return result

    async def search(self, query: str = "", *, limit: int = 50) -> list[dict[str, Any]]:
        result = await self._call("GET", "/hub/v1/directory", params={"q": query, "limit": limit})
        return list(result["items"])

    async def send_invitation(self, *, to: str, token: str, note: str = "") -> dict[str, Any]:
        body = {"to": to, "token": token, "note": note}
        result: dict[str, Any] = await self._call("POST", "/hub/v1/invitations", body=body)
        return result

    async def pending(self) -> list[dict[str, Any]]:
        result = await self._call("GET", "/hub/v1/invitations/pending")
        return list(result["items"])

    async def decide(self, invitation_id: str, *, decision: str, reason: str = "") -> None:
        """Answer an invitation sent to this account (``accepted`` | ``declined``): the hub
        drops its token and keeps the answer for the sender."""
        body = {"decision": decision, "reason": reason}
        await self._call("POST", f"/hub/v1/invitations/{invitation_id}/decision", body=body)

    async def sent(self) -> list[dict[str, Any]]:
        """The invitations this account sent, with their state and answer."""
        result = await self._call("GET", "/hub/v1/invitations/sent")
        return list(result["items"])

    async def dismiss(self, invitation_id: str) -> None:
        """``DELETE`` an invitation: the sender withdraws it or forgets its answer (the
        recipient takes it without an answer, as nodes before answers existed did)."""
        await self._call("DELETE", f"/hub/v1/invitations/{invitation_id}")
