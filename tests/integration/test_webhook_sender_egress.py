"""The webhook sender connects to a help desk only where the egress policy allows (B18).

A participant URL is set by the adapter's admin, but its host name is resolved at every
delivery: without the policy a name that later resolves to loopback or a private network would
make the adapter POST there. Refused deliveries stay queued with the reason and are retried.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.hosting import migrate
from adapters.webhook import SCHEMA as WEBHOOK
from adapters.webhook import sender
from adapters.webhook.models import WebhookOutbox, WebhookParticipant
from adapters.webhook.settings import WebhookSettings
from exchange.egress import EgressPolicy, parse_allow
from tests.support.db import BACKENDS, postgres_database, sqlite_url
from tests.support.helpdesk import HelpDesk, running_helpdesk

SETTINGS = WebhookSettings(retry_initial_seconds=0.1, retry_max_seconds=0.1, timeout_seconds=5)


@pytest.fixture
def desk() -> Iterator[HelpDesk]:
    with running_helpdesk() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    def build(url: str) -> Iterator[Engine]:
        migrate.prepare(WEBHOOK, url)
        made = create_engine(url, poolclass=pool.NullPool)
        yield made
        made.dispose()

    if request.param == "sqlite":
        yield from build(sqlite_url(tmp_path))
    else:
        with postgres_database("tix_webhook_egress") as url:
            yield from build(url)


def queue_one(engine: Engine, url: str) -> int:
    with Session(engine) as session:
        session.add(
            WebhookParticipant(
                account_id="zen-1234",
                adapter_account="hooks",
                name="Zen Co",
                url=url,
                secret="s" * 40,
                mapping={},
            )
        )
        row = WebhookOutbox(
            account_id="zen-1234", event_id="e-1", event="offer", payload={"event": "offer"}
        )
        session.add(row)
        session.commit()
        return int(row.id or 0)


def outbox_row(engine: Engine, row_id: int) -> WebhookOutbox:
    with Session(engine) as session:
        row = session.get(WebhookOutbox, row_id)
        assert row is not None
        return row


async def test_a_help_desk_on_a_loopback_address_is_refused_unless_allowed(
    engine: Engine, desk: HelpDesk
) -> None:
    # A loopback address is not allowed by the default policy.
    row_id = queue_one(engine, f"http://127.0.0.1:{desk.server_address[1]}/hook")
    async with sender.client_for(SETTINGS, EgressPolicy()) as client:
        assert await sender.deliver_once(engine, client, SETTINGS) == 1
    row = outbox_row(engine, row_id)
    assert (row.state, row.attempts) == ("pending", 1)
    assert "egress refused" in (row.last_error or "")
    assert desk.received() == []

    # The operator lists loopback (TIX_EGRESS_ALLOW): the retry delivers it.
    with Session(engine) as session:
        pending = session.get(WebhookOutbox, row_id)
        assert pending is not None
        pending.next_attempt_at = pending.created_at
        session.add(pending)
        session.commit()
    async with sender.client_for(SETTINGS, parse_allow("127.0.0.0/8")) as client:
        assert await sender.deliver_once(engine, client, SETTINGS) == 1
    assert outbox_row(engine, row_id).state == "sent"
    assert [body for _headers, body in desk.received()] == [b'{"event":"offer"}']
