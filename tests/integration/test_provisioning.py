"""Broker-level identity against a private RabbitMQ node with the management plugin.

Accounts are provisioned through the management HTTP API (``exchange.provisioning``); each then
connects as its own broker user (``exchange.broker_identity``). The broker itself must refuse
everything outside an account's share (403 ACCESS_REFUSED, 406 PRECONDITION_FAILED), and the
receiving inbox must refuse a message whose validated ``user_id`` is not its signed sender.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from exchange.amqp import AmqpTransport
from exchange.broker_identity import IdentityAmqpTransport
from exchange.errors import TransportError
from exchange.provisioning import BrokerAdmin, BrokerUser, permissions_for
from exchange.transport import Delivery, Outcome
from tests.support.db import node_database_url
from tests.support.inproc import Net
from tests.support.private_broker import PrivateBroker, free_port, skip_or_fail


@pytest.fixture(scope="module")
def broker() -> Iterator[PrivateBroker]:
    """A private node with the management API on a free port (never the machine's broker)."""
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None:
        skip_or_fail("a private RabbitMQ node needs rabbitmq-server and root (to chown its dir)")
    run_dir = Path(tempfile.mkdtemp(prefix="tix-provisioning-broker-", dir="/tmp"))
    node = PrivateBroker(
        run_dir,
        f"tixpv{uuid.uuid4().hex[:8]}@localhost",
        free_port(),
        free_port(),
        management_port=free_port(),
    )
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def admin_of(broker: PrivateBroker) -> BrokerAdmin:
    return BrokerAdmin(
        broker.management_url, amqp_url=broker.url, username="guest", password="guest"
    )


def provision(broker: PrivateBroker, *names: str) -> dict[str, BrokerUser]:
    suffix = uuid.uuid4().hex[:6]

    async def run() -> dict[str, BrokerUser]:
        async with admin_of(broker) as admin:
            return {name: await admin.provision(f"{name}-{suffix}") for name in names}

    return asyncio.run(run())


async def refused_with(
    url: str, attempt: Callable[[AbstractChannel], Awaitable[object]]
) -> type[Exception] | None:
    """Run ``attempt`` on a fresh confirm channel as the URL's user; the error class, if any."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            async with asyncio.timeout(15):
                await attempt(channel)
        except aiormq.exceptions.AMQPError as exc:
            return type(exc)
        return None
    finally:
        await connection.close()


def test_each_account_gets_exactly_its_own_permissions(broker: PrivateBroker) -> None:
    users = provision(broker, "acme")
    account = users["acme"].account_id

    async def held() -> dict[str, str]:
        async with admin_of(broker) as admin:
            return await admin.permissions(account)

    assert asyncio.run(held()) == permissions_for(account)
    assert permissions_for(account)["configure"] == "^$"


def test_an_account_cannot_read_bind_declare_or_pose_as_another(broker: PrivateBroker) -> None:
    users = provision(broker, "acme", "bravo")
    acme, bravo = users["acme"], users["bravo"]

    def message(user_id: str | None) -> aio_pika.Message:
        return aio_pika.Message(
            b"{}", user_id=user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )

    async def publish(
        channel: AbstractChannel, user_id: str | None, exchange: str, key: str
    ) -> None:
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(message(user_id), routing_key=key, mandatory=True)

    async def consume(channel: AbstractChannel) -> None:
        queue = await channel.get_queue(f"tix.inbox.{bravo.account_id}", ensure=False)

        async def ignore(_message: AbstractIncomingMessage) -> None:
            return None

        await queue.consume(ignore)

    async def bind(channel: AbstractChannel) -> None:
        queue = await channel.get_queue(f"tix.inbox.{acme.account_id}", ensure=False)
        await queue.bind("tix.exchange", routing_key=bravo.account_id)

    attempts: dict[str, Callable[[AbstractChannel], Awaitable[object]]] = {
        "publish as itself": lambda ch: publish(
            ch, acme.account_id, "tix.exchange", bravo.account_id
        ),
        "publish as bravo": lambda ch: publish(
            ch, bravo.account_id, "tix.exchange", bravo.account_id
        ),
        "fill bravo's dead letters": lambda ch: publish(
            ch, acme.account_id, "tix.dead", bravo.account_id
        ),
        "default exchange to bravo's inbox": lambda ch: ch.default_exchange.publish(
            message(acme.account_id), routing_key=f"tix.inbox.{bravo.account_id}"
        ),
        "consume bravo's inbox": consume,
        "bind its inbox to bravo's key": bind,
        "declare a queue": lambda ch: ch.declare_queue(f"spy-{acme.account_id}"),
        "delete the exchange": lambda ch: ch.exchange_delete("tix.exchange"),
        "delete bravo's inbox": lambda ch: ch.queue_delete(f"tix.inbox.{bravo.account_id}"),
    }

    async def run() -> dict[str, type[Exception] | None]:
        return {name: await refused_with(acme.amqp_url, go) for name, go in attempts.items()}

    got = asyncio.run(run())
    refused = aiormq.exceptions.ChannelAccessRefused
    assert got == {
        "publish as itself": None,
        "publish as bravo": aiormq.exceptions.ChannelPreconditionFailed,
        "fill bravo's dead letters": refused,
        "default exchange to bravo's inbox": refused,
        "consume bravo's inbox": refused,
        "bind its inbox to bravo's key": refused,
        "declare a queue": refused,
        "delete the exchange": refused,
        "delete bravo's inbox": refused,
    }


def test_the_identity_transport_checks_its_topology_passively(broker: PrivateBroker) -> None:
    users = provision(broker, "acme")
    acme = users["acme"]

    async def run() -> None:
        transport = IdentityAmqpTransport(acme.amqp_url)
        await transport.connect()
        try:
            await transport.declare_inbox(acme.account_id)  # provisioned: passes
            with pytest.raises(TransportError, match=r"not provisioned|refuses"):
                await transport.declare_inbox(f"ghost-{uuid.uuid4().hex[:6]}")
        finally:
            await transport.close()

    asyncio.run(run())


async def take_one(transport: AmqpTransport, account: str) -> Delivery:
    got: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()

    async def handler(delivery: Delivery) -> Outcome:
        if not got.done():
            got.set_result(delivery)
        return Outcome.ack()

    task = asyncio.create_task(transport.consume(account, handler))
    try:
        return await asyncio.wait_for(got, 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_provisioned_pair_exchanges_a_delegation_and_a_third_cannot_replay_it(
    broker: PrivateBroker, tmp_path: Path, db_backend: str
) -> None:
    users = provision(broker, "acme", "bravo", "mallory")
    acme, bravo, mallory = users["acme"], users["bravo"], users["mallory"]
    with Net(tmp_path, db_backend) as net:
        up = net.add_peer(acme.account_id)
        down = net.add_peer(bravo.account_id)
        net.link(acme.account_id, bravo.account_id)
        number = net.open_ticket(acme.account_id)
        net.delegate(acme.account_id, number, bravo.account_id)
        offer = net.network.pop(net.index(type="delegation.offer"))

        async def carry(
            sender: BrokerUser, to: BrokerUser, data: bytes, *, plain_url: str | None = None
        ) -> Delivery:
            out: AmqpTransport = (
                AmqpTransport(plain_url) if plain_url else IdentityAmqpTransport(sender.amqp_url)
            )
            into = IdentityAmqpTransport(to.amqp_url)
            await out.connect()
            await into.connect()
            try:
                await out.publish(to=to.account_id, body=data, message_id=str(uuid.uuid4()))
                return await take_one(into, to.account_id)
            finally:
                await out.close()
                await into.close()

        def receive_at(peer_name: str, delivery: Delivery) -> tuple[str, str]:
            peer = net.peers[peer_name]
            from account.messaging import inbox

            got = inbox.receive(
                delivery.body,
                engine=peer.engine,
                identities=peer.identities,
                broker_user=delivery.user_id,
                require_broker_user=True,
            )
            return got.outcome, got.reason

        # mallory replays acme's genuinely signed offer: refused on the broker user alone.
        replayed = asyncio.run(carry(mallory, bravo, offer.data))
        assert replayed.user_id == mallory.account_id
        assert receive_at(bravo.account_id, replayed) == ("rejected", "key_sender_mismatch")
        # Published without any user id (a connection that is not an account's): refused too.
        anonymous = asyncio.run(carry(mallory, bravo, offer.data, plain_url=broker.url))
        assert anonymous.user_id is None
        assert receive_at(bravo.account_id, anonymous) == ("rejected", "key_sender_mismatch")
        assert down.pending() == 0 and not any(
            r.reason != "key_sender_mismatch" for r in down.rejected()
        )

        # acme's own offer, carried as acme: applied; bravo accepts, carried back as bravo.
        delivered = asyncio.run(carry(acme, bravo, offer.data))
        assert delivered.user_id == acme.account_id
        assert receive_at(bravo.account_id, delivered) == ("applied", "")
        net.accept(bravo.account_id, down.ticket_for(offer.subject))
        answer = net.network.pop(net.index(type="delegation.accept"))
        back = asyncio.run(carry(bravo, acme, answer.data))
        assert back.user_id == bravo.account_id
        assert receive_at(acme.account_id, back) == ("applied", "")
        assert up.ticket(number).status in ("open", "in_progress")


def test_tix_exchange_provision_prints_a_working_url_and_deprovision_removes_it(
    broker: PrivateBroker,
) -> None:
    from typer.testing import CliRunner

    from account.cli import app

    account = f"cli-{uuid.uuid4().hex[:6]}"
    options = ["--admin-url", broker.url, "--management-url", broker.management_url]
    done = CliRunner().invoke(app, ["exchange", "provision", account, *options])
    assert done.exit_code == 0, done.output
    lines = dict(line.split("=", 1) for line in done.output.split())
    assert lines["TIX_BROKER_IDENTITY"] == "true"
    url = lines["TIX_AMQP_URL"]
    assert url.startswith(f"amqp://{account}:")

    async def connect_and_check() -> None:
        transport = IdentityAmqpTransport(url)
        await transport.connect()
        try:
            await transport.declare_inbox(account)
        finally:
            await transport.close()

    asyncio.run(connect_and_check())
    gone = CliRunner().invoke(app, ["exchange", "deprovision", account, *options])
    assert gone.exit_code == 0, gone.output
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
        asyncio.run(aio_pika.connect(url))
    bad = CliRunner().invoke(app, ["exchange", "provision", "Not An Id", *options])
    assert bad.exit_code == 1


def test_two_node_processes_with_broker_identity_link_and_delegate(
    broker: PrivateBroker, tmp_path: Path, db_backend: str
) -> None:
    """``TIX_BROKER_IDENTITY=true`` end to end: ``tix node serve`` as its own broker user."""
    with ExitStack() as databases:
        _broker_identity_end_to_end(broker, tmp_path, db_backend, databases)


def _broker_identity_end_to_end(
    broker: PrivateBroker, tmp_path: Path, backend: str, dbs: ExitStack
) -> None:
    from tests.support.nodes import NodeProcess, eventually, link, offered_ref

    users = provision(broker, "acme", "bravo")
    started: list[NodeProcess] = []
    try:
        for user in users.values():
            node = NodeProcess(
                user.account_id,
                tmp_path,
                amqp_url=user.amqp_url,
                database_url=node_database_url(backend, dbs),
            )
            node.init()
            started.append(node)
            node.start({"TIX_BROKER_IDENTITY": "true"})
        acme, bravo = started
        link(acme, bravo)
        number = acme.call("POST", "/api/v1/tickets", json={"title": "Lift stuck"})["number"]
        acme.call(
            "POST", f"/api/v1/tickets/{number}/delegations", json={"partner": bravo.account_id}
        )
        offer = eventually(lambda: offered_ref(bravo, number), what="the offer at bravo")
        bravo.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
        eventually(
            lambda: acme.ticket(number)["delegations"][0]["state"] == "accepted",
            what="the acceptance at acme",
        )
        assert acme.rejected() == [] and bravo.rejected() == []
    finally:
        for node in started:
            node.close()


def test_dlq_replay_with_broker_identity_works_as_the_accounts_own_user(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from account.cli import app

    acme = provision(broker, "acme")["acme"]

    async def park_one() -> None:
        transport = IdentityAmqpTransport(acme.amqp_url)
        await transport.connect()
        try:
            await transport.publish(to=acme.account_id, body=b"{}", message_id="parked-1")
            parked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            async def park(_delivery: Delivery) -> Outcome:
                if not parked.done():
                    parked.set_result(None)
                return Outcome.dead("parked")

            task = asyncio.create_task(transport.consume(acme.account_id, park))
            try:
                await asyncio.wait_for(parked, 20)
                # The handler has returned its verdict, but the consumer publishes the dead
                # letter and acks after that: stopping it now could leave the message in the
                # inbox (CI caught that race), so wait until the dead letter is there.
                deadline = time.monotonic() + 20
                while not (dead := await transport.dead_letters(acme.account_id)):
                    assert time.monotonic() < deadline, "the parked message never dead-lettered"
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert [d.reason for d in dead] == ["parked"]
        finally:
            await transport.close()

    asyncio.run(park_one())
    env = {
        "TIX_ACCOUNT_ID": acme.account_id,
        "TIX_AMQP_URL": acme.amqp_url,
        "TIX_BROKER_IDENTITY": "true",
        "TIX_DATA_DIR": str(tmp_path),
    }
    done = CliRunner().invoke(app, ["dlq", "replay"], env=env)
    assert done.exit_code == 0, done.output
    assert "replayed 1 message" in done.output

    async def back() -> Delivery:
        transport = IdentityAmqpTransport(acme.amqp_url)
        await transport.connect()
        try:
            return await take_one(transport, acme.account_id)
        finally:
            await transport.close()

    replayed = asyncio.run(back())
    assert (replayed.message_id, replayed.user_id) == ("parked-1", acme.account_id)
