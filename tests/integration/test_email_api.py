"""The adapter's admin API over its real app (no broker needed: the runtime is not started)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from account.bootstrap import init_node
from account.config import Settings
from adapters.email.models import MailOutbox
from adapters.email.server import build
from adapters.email.settings import MailSettings

PASSWORD = "adapter-password"


def test_the_mail_queue_is_listed_by_state_and_failed_mails_can_be_retried(
    tmp_path: Path,
) -> None:
    settings = Settings(account_id="mailgw-api", data_dir=tmp_path, database_url="")
    init_node(settings, admin="admin", password=PASSWORD)
    adapter, app = build(settings, MailSettings(mail_domain="mail.tix.test"))
    with Session(adapter.ctx.engine) as session:
        session.add(
            MailOutbox(
                message_id="<tix.x@mail.tix.test>",
                account_id="coolfix-a1",
                kind="offer",
                recipients=["dispatch@coolfix.example"],
                raw=b"Subject: x\r\n\r\nx\r\n",
                state="failed",
                tries=1,
                last_error="550 5.1.1 no such user",
            )
        )
        session.commit()

    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://adapter") as client:
            results: dict[str, Any] = {}
            results["anonymous"] = (await client.get("/api/v1/participants/mail")).status_code
            token = await client.post(
                "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            results["failed"] = (
                await client.get("/api/v1/participants/mail", params={"state": "failed"})
            ).json()
            results["bad_state"] = await client.get(
                "/api/v1/participants/mail", params={"state": "lost"}
            )
            results["retry"] = (await client.post("/api/v1/participants/mail/retry")).json()
            results["pending"] = (await client.get("/api/v1/participants/mail")).json()
            results["participants"] = (await client.get("/api/v1/participants")).json()
            return results

    results = asyncio.run(scenario())
    adapter.ctx.engine.dispose()
    assert results["anonymous"] == 401
    (failed,) = results["failed"]["items"]
    assert failed["to"] == ["dispatch@coolfix.example"] and "550" in failed["last_error"]
    assert results["bad_state"].status_code == 422 and "detail" in results["bad_state"].json()
    assert results["retry"] == {"retried": 1}
    assert [m["message_id"] for m in results["pending"]["items"]] == ["<tix.x@mail.tix.test>"]
    assert results["participants"] == {"items": []}
