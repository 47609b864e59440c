"""A node process under attack on the real broker: the test plays a linked partner by hand.

The test owns partner ``bravo``'s key and inbox, links it to the ``acme`` node through a real
invitation, receives acme's offer from the broker, and then publishes hand-made envelopes into
acme's inbox: valid ones, and ones that are tampered, signed with the wrong key, sent by an
unlinked account, addressed to someone else, malformed or oversize, replayed or stale.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from account.links.service import read_invitation
from exchange.amqp import AmqpTransport
from exchange.canonical import canonical
from exchange.clock import instant, utcnow
from exchange.envelopes import check_signature, open_envelope, seal
from exchange.signing import (
    generate_key,
    kid_of,
    public_key_b64,
    public_key_from_b64,
    sign_envelope,
)
from exchange.transport import Delivery, Outcome
from schemas import messages as m
from tests.support.nodes import NodeFactory, NodeProcess, delete_queues, eventually, run_id


@dataclass
class Peer:
    """The hand-played partner: its id, key, link and the delegation it was offered."""

    account_id: str
    key: Any
    link_id: str = ""
    delegation_id: str = ""
    seq: int = 0


def publish(url: str, to: str, body: bytes) -> None:
    async def run() -> None:
        transport = AmqpTransport(url)
        await transport.connect()
        try:
            await transport.publish(to=to, body=body, message_id=str(uuid.uuid4()))
        finally:
            await transport.close()

    asyncio.run(run())


def take_one(url: str, account: str, timeout: float = 20.0) -> bytes:
    """Consume one message from ``account``'s inbox."""

    async def run() -> bytes:
        transport = AmqpTransport(url)
        await transport.connect()
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(delivery: Delivery) -> Outcome:
            if not got.done():
                got.set_result(delivery.body)
            return Outcome.ack()

        task = asyncio.create_task(transport.consume(account, handler))
        try:
            return await asyncio.wait_for(got, timeout)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()

    return asyncio.run(run())


def declare(url: str, account: str) -> None:
    async def run() -> None:
        transport = AmqpTransport(url)
        await transport.connect()
        await transport.declare_inbox(account)
        await transport.close()

    asyncio.run(run())


def dead_reasons(url: str, account: str) -> list[str]:
    async def run() -> list[str]:
        transport = AmqpTransport(url)
        await transport.connect()
        try:
            return [d.reason for d in await transport.dead_letters(account, limit=100)]
        finally:
            await transport.close()

    return asyncio.run(run())


@pytest.fixture
def linked(nodes: NodeFactory, amqp_url: str) -> Iterator[tuple[NodeProcess, Peer, str]]:
    """acme (a node process) linked to bravo (the test), with one ticket offered to bravo."""
    acme = nodes("acme")
    bravo = Peer(account_id=f"bravo-{run_id()}", key=generate_key())
    declare(amqp_url, bravo.account_id)
    invite = acme.call("POST", "/api/v1/links/invitations", json={})
    claims = read_invitation(invite["token"])
    bravo.link_id = claims.link_id
    _, accept = seal(
        key=bravo.key,
        sender=bravo.account_id,
        to=acme.account_id,
        message_type="link.accept",
        link=bravo.link_id,
        subject=bravo.link_id,
        seq=1,
        body=m.LinkAccept(
            token=invite["token"],
            public_key=public_key_b64(bravo.key),
            kid=kid_of(bravo.key.public_key()),
            display_name="Bravo",
        ),
    )
    publish(amqp_url, acme.account_id, accept)
    eventually(lambda: acme.call("GET", "/api/v1/links")["items"], what="link at acme")

    number = acme.call("POST", "/api/v1/tickets", json={"title": "Lift stuck"})["number"]
    acme.call("POST", f"/api/v1/tickets/{number}/delegations", json={"partner": bravo.account_id})
    offer = open_envelope(take_one(amqp_url, bravo.account_id))
    check_signature(offer, public_key_from_b64(claims.public_key))
    assert offer.envelope.type == "delegation.offer"
    bravo.delegation_id = offer.envelope.subject
    yield acme, bravo, number
    delete_queues(amqp_url, [bravo.account_id])


def envelope(
    acme: NodeProcess, peer: Peer, message_type: str, body: Any, *, key: Any = None, **over: Any
) -> bytes:
    peer.seq += 1
    fields: dict[str, Any] = dict(
        key=key or peer.key,
        sender=peer.account_id,
        to=acme.account_id,
        message_type=message_type,
        link=peer.link_id,
        subject=peer.delegation_id,
        seq=peer.seq,
        body=body,
    )
    fields.update(over)
    return seal(**fields)[1]


def status(value: str) -> m.TicketStatus:
    return m.TicketStatus(ref="BRAVO-1", status=value, changed_at=instant(utcnow()))  # type: ignore[arg-type]


def test_hostile_messages_are_rejected_dead_lettered_and_change_nothing(
    linked: tuple[NodeProcess, Peer, str], amqp_url: str
) -> None:
    acme, bravo, number = linked
    send = lambda data: publish(amqp_url, acme.account_id, data)  # noqa: E731

    send(
        envelope(
            acme,
            bravo,
            "delegation.accept",
            m.DelegationAccept(ref="BRAVO-1", accepted_at=instant(utcnow())),
        )
    )
    eventually(lambda: acme.ticket(number)["delegations"][0]["state"] == "accepted", what="accept")
    timeline_before = acme.call("GET", f"/api/v1/tickets/{number}/timeline")["total"]

    # Tampered body: signed as in_progress, then edited to resolved.
    signed = json.loads(envelope(acme, bravo, "ticket.status", status("in_progress")))
    signed["body"]["status"] = "resolved"
    send(canonical(signed))
    # Signed with a key that is not pinned for bravo.
    send(envelope(acme, bravo, "ticket.status", status("resolved"), key=generate_key()))
    # A correct signature from an account that is not the partner on this link.
    mallory = generate_key()
    send(
        envelope(
            acme,
            bravo,
            "ticket.status",
            status("resolved"),
            key=mallory,
            sender=f"mallory-{run_id()}",
        )
    )
    # An unlinked account on a link that does not exist.
    send(envelope(acme, bravo, "ticket.status", status("resolved"), link=str(uuid.uuid4())))
    # Addressed to another account but routed to acme.
    send(envelope(acme, bravo, "ticket.status", status("resolved"), to=f"other-{run_id()}"))
    # Not JSON, duplicate keys, unknown version, unknown type, oversize.
    send(b'{"v": 1, "type": "ticket.status", ')
    send(b'{"v": 1, "v": 1}')
    unsigned = json.loads(envelope(acme, bravo, "ticket.status", status("resolved")))
    send(canonical(sign_envelope(unsigned | {"v": 2}, bravo.key)))
    send(canonical(sign_envelope(unsigned | {"type": "ticket.explode"}, bravo.key)))
    send(b'{"pad": "' + b"x" * (300 * 1024) + b'"}')
    # Sent "from the future" beyond the allowed clock skew.
    future = utcnow().replace(year=utcnow().year + 1)
    send(envelope(acme, bravo, "ticket.status", status("resolved"), sent_at=future))

    expected = {
        "invalid_signature",
        "unknown_kid",
        "not_counterpart",
        "no_link",
        "wrong_recipient",
        "malformed",
        "unsupported_version",
        "unknown_type",
        "too_large",
        "future_sent_at",
    }
    eventually(lambda: len(acme.rejected()) >= 11, what="eleven rejections")
    reasons = [r["reason"] for r in acme.rejected()]
    assert set(reasons) == expected
    assert reasons.count("malformed") == 2
    assert sorted(dead_reasons(amqp_url, acme.account_id)) == sorted(reasons)

    ticket = acme.ticket(number)
    assert ticket["delegations"][0]["state"] == "accepted"
    assert ticket["delegations"][0]["status"] == "open"
    assert acme.call("GET", f"/api/v1/tickets/{number}/timeline")["total"] == timeline_before

    # The consumer kept running: the next valid message is applied.
    valid = envelope(acme, bravo, "ticket.status", status("in_progress"))
    send(valid)
    eventually(
        lambda: acme.ticket(number)["delegations"][0]["status"] == "in_progress",
        what="valid status",
    )

    # The same envelope again is applied once; an older seq never rolls state back.
    send(valid)
    eventually(
        lambda: acme.metric('tix_messages_in_total{outcome="duplicate"}') >= 1, what="dedupe"
    )
    newer = envelope(acme, bravo, "ticket.status", status("resolved"))
    older = envelope(acme, bravo, "ticket.status", status("in_progress"), seq=bravo.seq - 1)
    send(newer)
    eventually(lambda: acme.ticket(number)["delegations"][0]["status"] == "resolved", what="newer")
    send(older)
    eventually(lambda: acme.metric('tix_messages_in_total{outcome="stale"}') >= 1, what="stale")
    assert acme.ticket(number)["delegations"][0]["status"] == "resolved"
    events = acme.call("GET", f"/api/v1/tickets/{number}/timeline")["items"]
    moves = [
        (e["detail"]["from"], e["detail"]["to"]) for e in events if e["kind"] == "partner_status"
    ]
    assert moves == [("open", "in_progress"), ("in_progress", "resolved")]
    assert len(acme.rejected()) == 11
