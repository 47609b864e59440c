"""Beyond one broker: a company broker and the hub broker joined by dynamic shovels.

Two private RabbitMQ nodes (own node names and ports, shovel plugin enabled through their
enabled_plugins files) start concurrently. Each gets a durable queue bound to ``tix.exchange``
with the account ids that live on the other broker, and a dynamic shovel
(``rabbitmqctl set_parameter shovel``) that moves it to the other broker's ``tix.exchange``.
Node A runs on the company broker, node B on the hub broker: they link, an offer goes down,
the acceptance and a status come back up.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import aio_pika
import pytest

from exchange.hub.topology import declare_shovel_source, shovel_definition
from tests.support.db import node_database_url
from tests.support.nodes import NodeProcess, eventually, link, offered_ref, run_id
from tests.support.private_broker import PrivateBroker, free_port, skip_or_fail


@pytest.fixture(scope="module")
def brokers() -> Iterator[tuple[PrivateBroker, PrivateBroker]]:
    """The company broker and the hub broker, started at the same time."""
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None:
        skip_or_fail("private RabbitMQ nodes need rabbitmq-server and root (to chown their dirs)")
    tag = uuid.uuid4().hex[:6]
    nodes = tuple(
        PrivateBroker(
            Path(tempfile.mkdtemp(prefix=f"tix-shovel-{role}-", dir="/tmp")),
            f"tixsh{role}{tag}@localhost",
            free_port(),
            free_port(),
            plugins=("rabbitmq_shovel",),
        )
        for role in ("company", "hub")
    )
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(node.start) for node in nodes]:
                started.result()
        yield nodes[0], nodes[1]
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda node: node.stop(), nodes))  # stop() removes each run dir


def shovel(source: PrivateBroker, dest: PrivateBroker, name: str, keys: list[str]) -> None:
    """Declare the source queue for ``keys`` and the dynamic shovel that drains it to ``dest``."""

    async def declare() -> str:
        connection = await aio_pika.connect(source.url)
        try:
            return await declare_shovel_source(await connection.channel(), name, keys)
        finally:
            await connection.close()

    queue = asyncio.run(declare())
    # In an AMQP URI "host/" names the empty vhost; without the slash it is the default "/".
    definition = shovel_definition(
        src_uri=source.url.rstrip("/"), src_queue=queue, dest_uri=dest.url.rstrip("/")
    )
    # No need to wait for it to run: the queue already keeps what is published meanwhile.
    source.ctl("set_parameter", "shovel", f"to-{name}", json.dumps(definition))


def source_running(broker: PrivateBroker) -> bool:
    status = broker.ctl("shovel_status").splitlines()[2:]
    return bool(status) and all("\trunning\t" in line for line in status)


def test_a_delegation_chain_crosses_two_brokers_over_shovels(
    brokers: tuple[PrivateBroker, PrivateBroker], tmp_path: Path, db_backend: str
) -> None:
    with ExitStack() as databases:
        _crosses_two_brokers(brokers, tmp_path, db_backend, databases)


def _crosses_two_brokers(
    brokers: tuple[PrivateBroker, PrivateBroker], tmp_path: Path, backend: str, dbs: ExitStack
) -> None:
    company, hub = brokers
    run = run_id()
    acme = NodeProcess(
        f"sha-{run}", tmp_path, amqp_url=company.url, database_url=node_database_url(backend, dbs)
    )
    bravo = NodeProcess(
        f"shb-{run}", tmp_path, amqp_url=hub.url, database_url=node_database_url(backend, dbs)
    )
    # Envelopes for bravo leave the company broker; envelopes for acme leave the hub broker.
    shovel(company, hub, "hub", [bravo.account_id])
    shovel(hub, company, "company", [acme.account_id])
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda node: (node.init(), node.start()), (acme, bravo)))
        link(acme, bravo)  # the token by hand; link.accept crosses hub → company
        number = acme.call("POST", "/api/v1/tickets", json={"title": "Chiller alarm"})["number"]
        acme.call(
            "POST", f"/api/v1/tickets/{number}/delegations", json={"partner": bravo.account_id}
        )
        offer = eventually(lambda: offered_ref(bravo, number), what="the offer on the hub broker")
        bravo.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
        eventually(
            lambda: acme.ticket(number)["delegations"][0]["state"] in ("accepted", "in_progress"),
            what="the acceptance back on the company broker",
        )
        bravo.call(
            "POST", f"/api/v1/tickets/{offer['number']}/status", json={"status": "in_progress"}
        )
        eventually(
            lambda: acme.ticket(number)["delegations"][0]["status"] == "in_progress",
            what="the status back on the company broker",
        )
        assert acme.rejected() == [] and bravo.rejected() == []
        assert source_running(company) and source_running(hub)
        # Each broker holds only its own account's inbox: the chain really crossed.
        assert f"tix.inbox.{bravo.account_id}" not in company.ctl("list_queues", "name")
        assert f"tix.inbox.{acme.account_id}" not in hub.ctl("list_queues", "name")
    finally:
        for node in (acme, bravo):
            node.close()
