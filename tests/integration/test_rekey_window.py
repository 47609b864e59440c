"""Key rotation at the database level, with a clock the test moves: the overlap window exactly.

``account.keys.rotate`` runs against a real key file and the sender's SQLite database; the
``link.rekey`` it queues is delivered by hand (``tests.support.inproc.Net``) so the test decides
when, and ``FrozenClock`` puts the receiver just inside and just past the overlap.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from account import keys
from account.config import Settings
from account.links import service as link_service
from account.links.models import Link, LinkPatch
from account.messaging import inbox
from exchange.envelopes import seal
from exchange.signing import generate_key, kid_of, load_key_file, public_key_b64, write_key_file
from schemas.messages import LinkRekey
from tests.support.inproc import Net, frozen_clock

# An hour ago: invitations are JWTs whose iat and exp PyJWT checks against the real clock.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
OVERLAP = 3600


def north_link(net: Net) -> Link:
    with net.peers["north"].session() as session:
        return session.exec(select(Link)).one()


def offer(net: Net) -> str:
    """acme offers a new ticket to north (signed with whatever key acme holds); the outcome."""
    number = net.open_ticket("acme")
    delegation_id = net.delegate("acme", number, "north")
    return net.deliver(net.index(subject=delegation_id)).outcome


def rekey_signed_by(net: Net, key: object, seq: int, overlap: int = 60) -> inbox.Received:
    """A hand-made link.rekey from acme to north, signed by ``key``."""
    link = north_link(net)
    new = generate_key()
    _id, data = seal(
        key=key,  # type: ignore[arg-type]
        sender="acme",
        to="north",
        message_type="link.rekey",
        link=link.id,
        subject=link.id,
        seq=seq,
        body=LinkRekey(
            public_key=public_key_b64(new), kid=kid_of(new.public_key()), overlap_seconds=overlap
        ),
        message_id=str(uuid.uuid4()),
    )
    peer = net.peers["north"]
    return inbox.receive(data, engine=peer.engine, identities=peer.identities)


def settings_of(net: Net, tmp_path: Path) -> Settings:
    """Settings pointing at acme's database and a key file holding acme's current key."""
    key_file = tmp_path / "acme.key"
    write_key_file(key_file, net.peers["acme"].identity.key)
    return Settings(
        account_id="acme",
        data_dir=tmp_path,
        key_file=key_file,
        database_url=net.urls["acme"],
    )


def test_the_old_key_works_inside_the_overlap_and_not_after(
    tmp_path: Path, db_backend: str
) -> None:
    with frozen_clock(START) as clock, Net(tmp_path / "net", db_backend) as net:
        acme = net.add_peer("acme")
        net.add_peer("north")
        net.link("acme", "north")
        old_key = acme.identity.key
        settings = settings_of(net, tmp_path)

        rotation = keys.rotate(settings, overlap_seconds=OVERLAP)
        assert rotation.partners == ["north"]
        new_key = load_key_file(settings.key_path)
        assert kid_of(new_key.public_key()) == rotation.new_kid != rotation.old_kid
        assert load_key_file(rotation.retired_key).public_key() == old_key.public_key()
        assert not keys.pending_key_path(settings.key_path).exists()
        (rekey,) = net.collect("acme")
        assert rekey.type == "link.rekey"
        assert net.deliver(0).outcome == "applied"
        link = north_link(net)
        assert (link.peer_kid, link.previous_kid) == (rotation.new_kid, rotation.old_kid)

        # The node still signs with the old key until it restarts: inside the window, fine.
        clock.tick(OVERLAP - 1)
        assert offer(net) == "applied"
        # Past the window the old key is refused, and nothing is changed.
        clock.tick(2)
        before = len(net.peers["north"].rejected())
        assert offer(net) == "rejected"
        rejected = net.peers["north"].rejected()
        assert len(rejected) == before + 1 and rejected[-1].reason == "unknown_kid"
        # The restarted node signs with the new key.
        acme.identity = replace(acme.identity, key=new_key)
        assert offer(net) == "applied"


def test_a_rekey_signed_by_an_unknown_or_a_previous_key_is_refused(
    tmp_path: Path, db_backend: str
) -> None:
    with frozen_clock(START), Net(tmp_path / "net", db_backend) as net:
        acme = net.add_peer("acme")
        net.add_peer("north")
        net.link("acme", "north")
        old_key = acme.identity.key
        keys.rotate(settings_of(net, tmp_path), overlap_seconds=OVERLAP)
        net.collect("acme")
        assert net.deliver(0).outcome == "applied"
        pinned = north_link(net)

        stranger = rekey_signed_by(net, generate_key(), seq=50)
        assert (stranger.outcome, stranger.reason) == ("rejected", "unknown_kid")
        # The previous key is still accepted for ordinary messages, but it cannot rotate.
        leaked = rekey_signed_by(net, old_key, seq=51)
        assert (leaked.outcome, leaked.reason) == ("rejected", "unknown_kid")
        after = north_link(net)
        assert (after.peer_kid, after.previous_kid, after.previous_valid_until) == (
            pinned.peer_kid,
            pinned.previous_kid,
            pinned.previous_valid_until,
        )


def test_a_rekey_crosses_a_suspended_link_and_a_huge_overlap_is_capped(
    tmp_path: Path, db_backend: str
) -> None:
    with frozen_clock(START) as clock, Net(tmp_path / "net", db_backend) as net:
        net.add_peer("acme")
        north = net.add_peer("north")
        net.link("acme", "north")
        with north.session() as session:
            link = session.exec(select(Link)).one()
            link_service.patch(
                session=session,
                identity=north.identity,
                link=link,
                patch_in=LinkPatch(state="suspended"),
            )
            session.commit()
        net.drain_fifo()
        settings = settings_of(net, tmp_path)
        keys.rotate(settings, overlap_seconds=OVERLAP)
        with pytest.raises(keys.RotationError):
            keys.rotate(settings, overlap_seconds=10**9)
        net.collect("acme")
        assert net.deliver(0).outcome == "applied"
        assert north_link(net).state == "suspended"

        current = load_key_file(tmp_path / "acme.key")
        huge = rekey_signed_by(net, current, seq=60, overlap=10 * 365 * 86_400)
        assert huge.outcome == "applied"
        link = north_link(net)
        assert link.previous_valid_until is not None
        granted = link.previous_valid_until.replace(tzinfo=UTC) - clock.now
        assert granted == keys.MAX_OVERLAP


def test_an_unfinished_rotation_is_refused_and_changes_nothing(
    tmp_path: Path, db_backend: str
) -> None:
    with frozen_clock(START), Net(tmp_path / "net", db_backend) as net:
        net.add_peer("acme")
        net.add_peer("north")
        net.link("acme", "north")
        settings = settings_of(net, tmp_path)
        write_key_file(keys.pending_key_path(settings.key_path), generate_key())
        before = load_key_file(settings.key_path).public_key()
        with pytest.raises(keys.RotationError, match="did not finish"):
            keys.rotate(settings)
        assert net.collect("acme") == []
        assert load_key_file(settings.key_path).public_key() == before


def test_a_key_the_inbox_parsed_before_a_rekey_verifies_nothing_after_it(
    tmp_path: Path, db_backend: str
) -> None:
    """The inbox parses each pinned key once (``inbox._public_key``, keyed by the key's own
    text), so the old key's object outlives the rekey in that cache; which key a message may
    use is still decided from the link's row, so without an overlap the old key is refused at
    once and the new one applies."""
    with frozen_clock(START) as clock, Net(tmp_path / "net", db_backend) as net:
        acme = net.add_peer("acme")
        net.add_peer("north")
        net.link("acme", "north")
        assert offer(net) == "applied"  # the old key, parsed and kept
        old_text = public_key_b64(acme.identity.key)
        assert inbox._public_key(old_text).public_bytes_raw() == (
            acme.identity.key.public_key().public_bytes_raw()
        )
        settings = settings_of(net, tmp_path)
        rotation = keys.rotate(settings, overlap_seconds=0)
        (rekey,) = net.collect("acme")
        assert rekey.type == "link.rekey"
        assert net.deliver(0).outcome == "applied"  # signed by the old key: verified, cached
        clock.tick(1)
        before = len(net.peers["north"].rejected())
        assert offer(net) == "rejected"
        rejected = net.peers["north"].rejected()
        assert len(rejected) == before + 1 and rejected[-1].reason == "unknown_kid"
        acme.identity = replace(acme.identity, key=load_key_file(settings.key_path))
        assert kid_of(acme.identity.key.public_key()) == rotation.new_kid
        assert offer(net) == "applied"
