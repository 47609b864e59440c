"""``tix adapter email keys rotate``: an e-mail participant's key, rotated at its upstream.

The upstream is a peer of ``tests.support.inproc.Net`` (its own database, envelopes delivered by
hand); the adapter is an initialised e-mail adapter database with one hosted participant linked
to it. The command queues a ``link.rekey`` signed with the participant's old key and switches its
key file; delivered, it makes the upstream pin the new key and keep the old one for the overlap.
The end-to-end variant over RabbitMQ is ``tests/e2e/test_webhook_flow.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from account.bootstrap import init_node, load_identity
from account.cli import app
from account.config import Settings, load_secret
from account.db import make_engine
from account.links import service as link_service
from account.links.models import Contract, InvitationCreate, Link
from account.messaging import inbox
from account.messaging.models import OutboxMessage
from adapters import cli  # noqa: F401  (adds ``tix adapter`` to the app)
from adapters.email import SCHEMA, participants
from adapters.email.outbound import Mailer
from adapters.email.settings import MailSettings, reply_secret
from adapters.hosting import migrate
from adapters.hosting.participants import key_path
from exchange.signing import kid_of, load_key_file
from tests.support.inproc import Net


def pending(settings: Settings, message_type: str) -> list[OutboxMessage]:
    """The adapter's pending outbox rows of one type, marked sent (taken off to deliver)."""
    engine = make_engine(settings.db_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.state == "pending", OutboxMessage.type == message_type)
                .order_by(col(OutboxMessage.id))
            ).all()
            for row in rows:
                row.state = "sent"
                session.add(row)
            session.commit()
            return list(rows)
    finally:
        engine.dispose()


def test_rotating_an_email_participants_key_rekeys_its_upstream(
    tmp_path: Path, db_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(account_id="mailgw", data_dir=tmp_path / "mailgw", database_url="")
    init_node(settings, admin="admin", password="adapter-password")
    migrate.prepare(SCHEMA, settings.db_url)
    with Net(tmp_path / "net", db_backend) as net:
        acme = net.add_peer("acme")
        with acme.session() as session:
            _invitation, token = link_service.create_invitation(
                session=session,
                identity=acme.identity,
                invitation_in=InvitationCreate(contract=Contract()),
            )
            session.commit()
        engine = make_engine(settings.db_url)
        mailer = Mailer(
            mail=MailSettings(), secret=reply_secret(load_secret(settings)), adapter_id="mailgw"
        )
        with Session(engine, expire_on_commit=False) as session:
            participant, _identity = participants.create(
                session=session,
                settings=settings,
                adapter=load_identity(settings),
                mailer=mailer,
                participant_in=participants.ParticipantCreate(
                    token=token, name="CoolFix", emails=["dispatch@coolfix.example"]
                ),
            )
            session.commit()
        engine.dispose()
        account = participant.account_id
        (accept,) = pending(settings, "link.accept")
        received = inbox.receive(bytes(accept.body), engine=acme.engine, identities=acme.identities)
        assert received.outcome == "applied"
        with acme.session() as session:
            old_kid = session.exec(select(Link)).one().peer_kid

        monkeypatch.setenv("TIX_ACCOUNT_ID", "mailgw")
        monkeypatch.setenv("TIX_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("TIX_DATABASE_URL", "")
        runner = CliRunner()
        for adapter, who in (("email", "mailgw"), ("webhook", account)):
            refused = runner.invoke(app, ["adapter", adapter, "keys", "rotate", "--account", who])
            assert refused.exit_code == 1 and "cannot rotate" in refused.output, refused.output
        assert pending(settings, "link.rekey") == []

        done = runner.invoke(
            app,
            [
                "adapter",
                "email",
                "keys",
                "rotate",
                "--account",
                account,
                "--overlap-seconds",
                "600",
            ],
        )
        assert done.exit_code == 0, done.output
        new_kid = kid_of(load_key_file(key_path(settings, account)).public_key())
        assert new_kid != old_kid and f"{old_kid} → {new_kid}" in done.output
        assert load_identity(settings).kid != new_kid  # the adapter's own key is untouched

        (rekey,) = pending(settings, "link.rekey")
        assert (rekey.account_id, rekey.to_account) == (account, "acme")
        received = inbox.receive(bytes(rekey.body), engine=acme.engine, identities=acme.identities)
        assert received.outcome == "applied"
        with acme.session() as session:
            link = session.exec(select(Link)).one()
        assert (link.peer_kid, link.previous_kid) == (new_kid, old_kid)
        assert link.previous_valid_until is not None
