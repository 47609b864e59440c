"""Attachments both ways along a three-level chain of node processes over the machine's RabbitMQ.

acme delegates to northwind, which delegates to southwind. A large file uploaded at acme
travels down by digest: northwind fetches it from acme's API, southwind from northwind's. A
small photo uploaded at southwind travels up inline. Runs once the attachment hooks are wired
into the node (``delegation_service._APPLIERS``, the app's routers and the fetch loop).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from account.delegations import service as delegation_service
from tests.support.nodes import NodeFactory, NodeProcess, eventually, link, offered_ref

pytestmark = pytest.mark.skipif(
    ("in", "ticket.attachment") not in delegation_service._APPLIERS,
    reason="attachments are not wired into the node yet",
)

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40  # ~10 KiB: over the 1 KiB inline limit
PNG = b"\x89PNG\r\n\x1a\n" + bytes(300)


def start(nodes: NodeFactory, name: str) -> NodeProcess:
    node = nodes(name, start=False)
    node.start(
        {
            "TIX_PUBLIC_URL": f"http://127.0.0.1:{node.port}",
            "TIX_ATTACHMENT_INLINE_BYTES": "1024",
        }
    )
    return node


def delegate_and_accept(up: NodeProcess, down: NodeProcess, number: str) -> str:
    up.call("POST", f"/api/v1/tickets/{number}/delegations", json={"partner": down.account_id})
    offer = eventually(lambda: offered_ref(down, number), what=f"the offer at {down.account_id}")
    down.call("POST", f"/api/v1/tickets/{offer['number']}/accept")
    return str(offer["number"])


def stored(node: NodeProcess, number: str, sha256: str) -> dict[str, Any] | None:
    items = node.call("GET", f"/api/v1/tickets/{number}/attachments")["items"]
    return next((i for i in items if i["sha256"] == sha256 and i["stored"]), None)


def test_attachments_travel_down_by_digest_and_up_inline(nodes: NodeFactory) -> None:
    acme, northwind, southwind = (start(nodes, n) for n in ("acme", "northwind", "southwind"))
    link(acme, northwind)
    link(northwind, southwind)
    number = acme.call("POST", "/api/v1/tickets", json={"title": "Chiller alarm"})["number"]
    nw_number = delegate_and_accept(acme, northwind, number)
    sw_number = delegate_and_accept(northwind, southwind, nw_number)

    pdf = acme.call(
        "POST",
        f"/api/v1/tickets/{number}/attachments",
        files={"file": ("manual.pdf", PDF, "application/pdf")},
    )
    digest = hashlib.sha256(PDF).hexdigest()
    assert pdf["sha256"] == digest

    at_sw = eventually(lambda: stored(southwind, sw_number, digest), timeout=60, what="PDF below")
    assert at_sw["filename"] == "manual.pdf" and at_sw["source_account"] == northwind.account_id
    download = southwind.client.get(f"/api/v1/tickets/{sw_number}/attachments/{at_sw['id']}")
    assert download.status_code == 200 and download.content == PDF
    assert stored(northwind, nw_number, digest) is not None

    southwind.call(
        "POST",
        f"/api/v1/tickets/{sw_number}/attachments",
        files={"file": ("site.png", PNG, "image/png")},
        data={"visibility": "public"},
    )
    png_digest = hashlib.sha256(PNG).hexdigest()
    at_acme = eventually(lambda: stored(acme, number, png_digest), what="photo at acme")
    assert at_acme["visibility"] == "public"
    photo = acme.client.get(f"/api/v1/tickets/{number}/attachments/{at_acme['id']}")
    assert photo.content == PNG
    assert acme.rejected() == [] and northwind.rejected() == [] and southwind.rejected() == []

    # An attachment made before the ticket is delegated follows the offer.
    second = acme.call("POST", "/api/v1/tickets", json={"title": "Door closer"})["number"]
    acme.call(
        "POST",
        f"/api/v1/tickets/{second}/attachments",
        files={"file": ("door.png", PNG, "image/png")},
    )
    nw_second = delegate_and_accept(acme, northwind, second)
    early = eventually(lambda: stored(northwind, nw_second, png_digest), what="early photo")
    assert early["filename"] == "door.png"
    assert acme.rejected() == [] and northwind.rejected() == []
