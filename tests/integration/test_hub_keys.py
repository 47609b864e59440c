"""Key rotation reaches the hub's directory: ``tix keys rotate`` (a node's own account) and
``tix adapter email keys rotate --account`` (an account the adapter hosts) move the account's
entry to the new key with a request signed by the old one, which the hub pins.

A real hub app on loopback (tests.support.hub) and an initialised e-mail adapter (a node
database with the adapter's tables) hosting one participant, linked to an upstream peer of
``tests.support.inproc.Net``. The hub's database and the adapter's are on ``db_backend``.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from account.bootstrap import init_node, load_identity
from account.config import Settings, load_secret
from account.db import make_engine
from account.links import service as link_service
from account.links.models import Contract, InvitationCreate
from adapters.email import SCHEMA, participants
from adapters.email.outbound import Mailer
from adapters.email.settings import MailSettings, reply_secret
from adapters.hosting import migrate
from adapters.hosting.participants import key_path
from exchange.hub.models import DirectoryEntry
from exchange.signing import kid_of, load_key_file
from tests.support.db import node_database_url
from tests.support.hub import HubServer, serve_hub
from tests.support.inproc import Net
from tests.support.nodes import TIX
from tests.support.private_broker import free_port


@dataclass
class Result:
    exit_code: int
    output: str


class Tix:
    """``tix`` in a process of its own (its engines close with it), with ``env``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def invoke(self, args: list[str]) -> Result:
        done = subprocess.run(
            [TIX, *args], env=self.env, capture_output=True, timeout=120, check=False
        )
        return Result(done.returncode, (done.stdout + done.stderr).decode())


def _entry(hub: HubServer, account: str) -> DirectoryEntry | None:
    with Session(hub.engine) as session:
        return session.get(DirectoryEntry, account)


def _kid(path: Path) -> str:
    return kid_of(load_key_file(path).public_key())


def test_rotations_move_hub_directory_entries_to_the_new_key(
    tmp_path: Path, db_backend: str
) -> None:
    with ExitStack() as stack:
        url = node_database_url(db_backend, stack, tables=False)
        settings = Settings(account_id="mailgw", data_dir=tmp_path / "mailgw", database_url=url)
        init_node(settings, admin="admin", password="adapter-password")
        migrate.prepare(SCHEMA, settings.db_url)
        net = stack.enter_context(Net(tmp_path / "net", db_backend))
        hub = stack.enter_context(serve_hub(tmp_path, db_backend))
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
        hosted = participant.account_id
        hosted_key = key_path(settings, hosted)

        env = {k: v for k, v in os.environ.items() if not k.startswith("TIX_")}
        env.update(
            TIX_ACCOUNT_ID="mailgw",
            TIX_DATA_DIR=str(settings.data_dir),
            TIX_DATABASE_URL=url,
            TIX_HUB_URL=hub.url,
            COLUMNS="300",
        )
        runner = Tix(env)

        # The hosted account joins the directory under its own key, as an e-mail account.
        joined = runner.invoke(["adapter", "email", "hub", "register"])
        assert joined.exit_code == 0, joined.output
        entry = _entry(hub, hosted)
        assert entry is not None
        assert (entry.display_name, entry.transport) == ("CoolFix", "email")
        assert entry.kid == _kid(hosted_key)
        unknown = runner.invoke(["adapter", "email", "hub", "register", "--account", "nope"])
        assert unknown.exit_code == 1 and "not a email participant" in unknown.output

        # Rotating its key moves the entry: signed with the old key the hub pins.
        old_kid = entry.kid
        rotated = runner.invoke(["adapter", "email", "keys", "rotate", "--account", hosted])
        assert rotated.exit_code == 0, rotated.output
        new_kid = _kid(hosted_key)
        assert new_kid != old_kid and f"{hosted} now has kid {new_kid}" in rotated.output
        entry = _entry(hub, hosted)
        assert entry is not None and entry.kid == new_kid
        assert (entry.display_name, entry.transport) == ("CoolFix", "email")
        # The new key is the pinned one now: a plain registration (signed with it) works.
        again = runner.invoke(["adapter", "email", "hub", "register", "--account", hosted])
        assert again.exit_code == 0, again.output

        # The adapter's own account (a node): tix keys rotate moves its entry the same way,
        # keeping its transport.
        registered = runner.invoke(["hub", "register", "--transport", "email"])
        assert registered.exit_code == 0, registered.output
        own_key = settings.key_path
        own_old = _kid(own_key)
        rotated = runner.invoke(["keys", "rotate"])
        assert rotated.exit_code == 0, rotated.output
        own_entry = _entry(hub, "mailgw")
        assert own_entry is not None and own_entry.kid == _kid(own_key) != own_old
        assert own_entry.transport == "email"

        # A hub that does not answer: the rotation stands, and the command says how to finish.
        env["TIX_HUB_URL"] = f"http://127.0.0.1:{free_port()}"
        before = _kid(own_key)
        rotated = runner.invoke(["keys", "rotate"])
        assert rotated.exit_code == 0, rotated.output
        assert _kid(own_key) != before
        assert "still has the old key" in rotated.output and "--signed-with" in rotated.output
        own_entry = _entry(hub, "mailgw")
        assert own_entry is not None and own_entry.kid == before
        retired = own_key.with_name(f"{own_key.name}.{before}.retired")
        env["TIX_HUB_URL"] = hub.url
        finished = runner.invoke(["hub", "register", "--signed-with", str(retired)])
        assert finished.exit_code == 0, finished.output
        own_entry = _entry(hub, "mailgw")
        assert own_entry is not None and own_entry.kid == _kid(own_key)

        # An account not in the directory has nothing to move.
        net_less = runner.invoke(["adapter", "email", "keys", "rotate", "--account", hosted])
        assert net_less.exit_code == 0
        with Session(hub.engine) as session:
            session.delete(session.get(DirectoryEntry, hosted))
            session.commit()
        rotated = runner.invoke(["adapter", "email", "keys", "rotate", "--account", hosted])
        assert rotated.exit_code == 0, rotated.output
        assert "not in the hub's directory" in rotated.output
