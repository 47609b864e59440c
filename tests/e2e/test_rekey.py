"""``tix keys rotate`` end to end: two node processes over the machine's RabbitMQ.

acme rotates its key while it runs. northwind pins the new key on the ``link.rekey`` (signed
with the old one). acme keeps signing with the old key until it restarts, which northwind
accepts inside the overlap window. A second rotation with no overlap shows the old key refused
once the window has ended. A rekey signed by a key northwind never pinned is refused and changes
nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from exchange.amqp import AmqpTransport
from exchange.envelopes import seal
from exchange.signing import generate_key, kid_of, load_key_file, public_key_b64
from schemas.messages import LinkRekey
from tests.support.nodes import TIX, NodeFactory, NodeProcess, eventually, link, offered_ref


def rotate(node: NodeProcess, overlap: int) -> str:
    """Run ``tix keys rotate`` as the node's operator would; return the new kid."""
    done = subprocess.run(
        [TIX, "keys", "rotate", "--overlap-seconds", str(overlap)],
        env=node.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    key_file = node.workdir / node.account_id / f"{node.account_id}.key"
    return kid_of(load_key_file(key_file).public_key())


def partner_kid(node: NodeProcess, partner: str) -> str | None:
    for item in node.call("GET", "/api/v1/links")["items"]:
        if item["partner"] == partner:
            return str(item["partner_kid"])
    return None


def delegate(upstream: NodeProcess, downstream: NodeProcess) -> str:
    number = upstream.call("POST", "/api/v1/tickets", json={"title": "Lift 3 stuck"})["number"]
    upstream.call(
        "POST",
        f"/api/v1/tickets/{number}/delegations",
        json={"partner": downstream.account_id},
    )
    return str(number)


def publish(url: str, to: str, body: bytes) -> None:
    async def run() -> None:
        transport = AmqpTransport(url)
        await transport.connect()
        try:
            await transport.publish(to=to, body=body, message_id=str(uuid.uuid4()))
        finally:
            await transport.close()

    asyncio.run(run())


def rejected(node: NodeProcess, reason: str, message_type: str) -> int:
    return sum(1 for r in node.rejected() if r["reason"] == reason and r["type"] == message_type)


def test_rotation_pins_the_new_key_keeps_the_old_one_for_the_window_and_refuses_strangers(
    nodes: NodeFactory, amqp_url: str
) -> None:
    acme = nodes("acme")
    north = nodes("north")
    link_id = link(acme, north)
    first_kid = partner_kid(north, acme.account_id)

    second_kid = rotate(acme, overlap=3600)
    assert second_kid != first_kid
    eventually(
        lambda: partner_kid(north, acme.account_id) == second_kid, what="north pins the new key"
    )

    # acme still runs on the old key: inside the window north takes what it signs.
    old_signed = delegate(acme, north)
    eventually(lambda: offered_ref(north, old_signed), what="an offer signed with the old key")
    # Restarted, acme signs with the new key.
    acme.stop()
    acme.start()
    new_signed = delegate(acme, north)
    eventually(lambda: offered_ref(north, new_signed), what="an offer signed with the new key")

    # No overlap this time: the key acme still runs on is refused as soon as north has rotated.
    third_kid = rotate(acme, overlap=0)
    eventually(lambda: partner_kid(north, acme.account_id) == third_kid, what="second rekey")
    before = rejected(north, "unknown_kid", "delegation.offer")
    refused = delegate(acme, north)
    eventually(
        lambda: rejected(north, "unknown_kid", "delegation.offer") == before + 1,
        what="an offer signed with a key past its window refused",
    )
    assert offered_ref(north, refused) is None
    acme.stop()
    acme.start()
    accepted = delegate(acme, north)
    eventually(lambda: offered_ref(north, accepted), what="an offer after the restart")

    # A rekey signed by a key north never pinned is refused and changes nothing.
    stranger = generate_key()
    wanted = generate_key()
    _id, data = seal(
        key=stranger,
        sender=acme.account_id,
        to=north.account_id,
        message_type="link.rekey",
        link=link_id,
        subject=link_id,
        seq=10_000,
        body=LinkRekey(public_key=public_key_b64(wanted), kid=kid_of(wanted.public_key())),
    )
    before = rejected(north, "unknown_kid", "link.rekey")
    publish(amqp_url, north.account_id, data)
    eventually(
        lambda: rejected(north, "unknown_kid", "link.rekey") == before + 1,
        what="the stranger's rekey refused",
    )
    assert partner_kid(north, acme.account_id) == third_kid
    assert offered_ref(north, refused) is None
