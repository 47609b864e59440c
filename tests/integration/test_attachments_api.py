"""The attachment endpoints of one node in-process, on SQLite and PostgreSQL.

The app is built from the attachment router, the user router (for tokens) and the account
error handlers, the way ``account.app`` will include it: upload, list and download, the hard
size limit (413) and the content-type check (415), contact scoping, and safe file names.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from account.attachments import views as attachment_views
from account.attachments.models import Attachment
from account.config import Settings
from account.context import Identity, NodeContext
from account.db import session_scope
from account.http_errors import install_error_handlers
from account.tickets import service as ticket_service
from account.tickets.models import Ticket, TicketCreate
from account.users import service as user_service
from account.users import views as user_views
from account.users.models import UserCreate
from exchange.signing import generate_key
from tests.support.db import clear_tables

MAX = 4096
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(100)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"0" * 50


@pytest.fixture
def ctx(engine: Engine, tmp_path: Path) -> Iterator[NodeContext]:
    clear_tables(engine)
    settings = Settings(account_id="acme", data_dir=tmp_path, attachment_max_bytes=MAX)
    with session_scope(engine) as session:
        for name, role, org in (
            ("disp", "dispatcher", None),
            ("eng", "engineer", None),
            ("alice", "contact", "Bank North"),
            ("bob", "contact", "Bank South"),
        ):
            user_service.create(
                session=session,
                user_in=UserCreate(
                    username=name, password="password-123", role=role, organisation=org
                ),
            )
        ticket_service.create(
            session=session,
            account_id="acme",
            ticket_in=TicketCreate(title="ATM", organisation="Bank North"),
        )
    identity = Identity(account_id="acme", label="ACME", key=generate_key())
    yield NodeContext(settings=settings, engine=engine, identity=identity, secret=b"s" * 48)
    clear_tables(engine)


@pytest.fixture
async def client(ctx: NodeContext) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.ctx = ctx
    app.include_router(user_views.router)
    app.include_router(attachment_views.router)
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as http:
        yield http


@pytest.fixture
def number(ctx: NodeContext) -> str:
    """The number of the one ticket (organisation Bank North)."""
    with Session(ctx.engine) as session:
        return session.exec(select(Ticket.number)).one()


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": "password-123"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def post_file(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    number: str,
    data: bytes,
    *,
    filename: str = "photo.png",
    content_type: str = "image/png",
    visibility: str | None = None,
) -> httpx.Response:
    form = {"visibility": visibility} if visibility is not None else None
    return await client.post(
        f"/api/v1/tickets/{number}/attachments",
        files={"file": (filename, data, content_type)},
        data=form,
        headers=headers,
    )


def blob_files(ctx: NodeContext) -> list[Path]:
    root = ctx.settings.data_dir / "blobs"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_upload_list_and_download_round_trip(
    client: httpx.AsyncClient, ctx: NodeContext, number: str
) -> None:
    disp = await login(client, "disp")

    created = await post_file(client, disp, number, PNG, visibility="partner")

    assert created.status_code == 201, created.text
    item = created.json()
    assert item["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (item["size"], item["content_type"], item["visibility"]) == (
        len(PNG),
        "image/png",
        "partner",
    )
    assert item["stored"] is True and item["source_account"] is None
    listed = (await client.get(f"/api/v1/tickets/{number}/attachments", headers=disp)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == item["id"]

    download = await client.get(f"/api/v1/tickets/{number}/attachments/{item['id']}", headers=disp)

    assert download.status_code == 200 and download.content == PNG
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith('attachment; filename="photo.png"')
    assert blob_files(ctx) == [
        ctx.settings.data_dir / "blobs" / item["sha256"][:2] / item["sha256"]
    ]


async def test_the_same_content_twice_is_stored_once(
    client: httpx.AsyncClient, ctx: NodeContext, number: str
) -> None:
    eng = await login(client, "eng")

    first = (await post_file(client, eng, number, PDF, content_type="application/pdf")).json()
    second = (
        await post_file(
            client, eng, number, PDF, filename="copy.pdf", content_type="application/octet-stream"
        )
    ).json()

    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert second["content_type"] == "application/pdf", (
        "a generic declaration takes the sniffed type"
    )
    assert len(blob_files(ctx)) == 1


async def test_upload_over_the_hard_limit_is_refused_with_413_and_nothing_is_kept(
    client: httpx.AsyncClient, ctx: NodeContext, number: str
) -> None:
    disp = await login(client, "disp")

    response = await post_file(
        client, disp, number, b"a" * (MAX + 1), filename="big.txt", content_type="text/plain"
    )

    assert response.status_code == 413, response.text
    assert blob_files(ctx) == []
    at_limit = await post_file(
        client, disp, number, b"a" * MAX, filename="ok.txt", content_type="text/plain"
    )
    assert at_limit.status_code == 201, at_limit.text


async def test_a_declared_length_far_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, number: str
) -> None:
    disp = await login(client, "disp")

    response = await client.post(
        f"/api/v1/tickets/{number}/attachments",
        content=b"--b\r\n",
        headers=disp
        | {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(10**9)},
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (PNG, "application/pdf"),
        (PNG, "text/plain"),
        (PDF, "image/jpeg"),
        (b"just some text\n", "image/png"),
        (b"\x00\x01\x02binary", "text/plain"),
        (b"GIF89a......", "application/zip"),
    ],
)
async def test_a_declared_type_that_contradicts_the_content_is_refused_with_415(
    client: httpx.AsyncClient, ctx: NodeContext, number: str, data: bytes, declared: str
) -> None:
    disp = await login(client, "disp")

    response = await post_file(client, disp, number, data, filename="x", content_type=declared)

    assert response.status_code == 415
    assert response.json() == {"detail": "content type does not match the content"}
    assert blob_files(ctx) == []


@pytest.mark.parametrize(
    ("data", "declared", "stored"),
    [
        (PNG, "application/octet-stream", "image/png"),
        (b"PK\x03\x04rest", DOCX, DOCX),
        (b"a,b\n1,2\n", "text/csv", "text/csv"),
        (b"\x00\x01\x02binary", "application/x-custom", "application/x-custom"),
        (b"\xff\xd8\xff\xe0JFIF", "IMAGE/JPEG; name=x", "image/jpeg"),
    ],
)  # fmt: skip
async def test_consistent_or_unknown_declared_types_are_kept(
    client: httpx.AsyncClient, number: str, data: bytes, declared: str, stored: str
) -> None:
    disp = await login(client, "disp")

    response = await post_file(client, disp, number, data, filename="x", content_type=declared)

    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == stored


async def test_a_body_that_is_not_a_multipart_upload_is_refused(
    client: httpx.AsyncClient, number: str
) -> None:
    disp = await login(client, "disp")
    url = f"/api/v1/tickets/{number}/attachments"

    as_json = await client.post(url, json={"file": "x"}, headers=disp)
    no_file = await client.post(url, data={"visibility": "public"}, files={}, headers=disp)
    two_files = await client.post(
        url, files=[("file", ("a", b"a", "text/plain")), ("file", ("b", b"b", "text/plain"))],
        headers=disp,
    )  # fmt: skip
    truncated = await client.post(
        url,
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        headers=disp | {"Content-Type": "multipart/form-data; boundary=b"},
    )

    assert as_json.status_code == 415
    assert no_file.status_code in (415, 422)
    assert two_files.status_code == 422
    assert truncated.status_code == 422


async def test_contacts_upload_and_see_only_public_attachments_of_their_organisation(
    client: httpx.AsyncClient, number: str
) -> None:
    disp, alice, bob = [await login(client, u) for u in ("disp", "alice", "bob")]
    partner = (await post_file(client, disp, number, PNG, visibility="partner")).json()
    internal = (await post_file(client, disp, number, PDF, content_type="application/pdf",
                                visibility="internal")).json()  # fmt: skip
    public = await post_file(client, alice, number, b"photo of the receipt\n",
                             filename="r.txt", content_type="text/plain")  # fmt: skip
    assert public.status_code == 201 and public.json()["visibility"] == "public"

    assert (await post_file(client, alice, number, PNG, visibility="partner")).status_code == 403
    listed = (await client.get(f"/api/v1/tickets/{number}/attachments", headers=alice)).json()
    assert [i["id"] for i in listed["items"]] == [public.json()["id"]]
    for hidden in (partner, internal):
        url = f"/api/v1/tickets/{number}/attachments/{hidden['id']}"
        assert (await client.get(url, headers=alice)).status_code == 404
    staff_view = (await client.get(f"/api/v1/tickets/{number}/attachments", headers=disp)).json()
    assert staff_view["total"] == 3

    other_org = await client.get(f"/api/v1/tickets/{number}/attachments", headers=bob)
    assert other_org.status_code == 404
    assert (await post_file(client, bob, number, PNG, visibility="public")).status_code == 404
    own = f"/api/v1/tickets/{number}/attachments/{public.json()['id']}"
    assert (await client.get(own, headers=bob)).status_code == 404
    assert (await client.get(own, headers=alice)).status_code == 200


async def test_unauthenticated_callers_and_bad_visibility_are_refused(
    client: httpx.AsyncClient, number: str
) -> None:
    disp = await login(client, "disp")

    assert (await post_file(client, {}, number, PNG)).status_code == 401
    assert (await client.get(f"/api/v1/tickets/{number}/attachments")).status_code == 401
    assert (await post_file(client, disp, number, PNG, visibility="secret")).status_code == 400
    assert (
        await client.get("/api/v1/tickets/ACME-999/attachments", headers=disp)
    ).status_code == 404
    missing = await client.get(f"/api/v1/tickets/{number}/attachments/nope", headers=disp)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\eve\\report.pdf", "report.pdf"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("tab\tand\x00nul\x1b.txt", "tabandnul.txt"),
        ("zero\u200bwidth\u2028.txt", "zerowidth.txt"),
        ("..", "attachment"),
        ("  .hidden ", "hidden"),
        ("ü" * 300 + ".jpeg", "ü" * 195 + ".jpeg"),
    ],
)
async def test_file_names_are_sanitised(
    client: httpx.AsyncClient, number: str, given: str, expected: str
) -> None:
    disp = await login(client, "disp")
    # Raw bytes: httpx would percent-encode control characters in the name itself.
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="'
        + given.encode()
        + b'"\r\nContent-Type: image/png\r\n\r\n'
        + PNG
        + b"\r\n--XyZ--\r\n"
    )

    created = await client.post(
        f"/api/v1/tickets/{number}/attachments",
        content=body,
        headers=disp | {"Content-Type": "multipart/form-data; boundary=XyZ"},
    )

    assert created.status_code == 201, created.text
    assert created.json()["filename"] == expected
    assert len(expected) <= 200
    download = await client.get(
        f"/api/v1/tickets/{number}/attachments/{created.json()['id']}", headers=disp
    )
    disposition = download.headers["content-disposition"]
    assert disposition.isascii() and "\r" not in disposition and "/" not in disposition


async def test_a_large_partner_attachment_not_fetched_yet_answers_404_with_a_reason(
    client: httpx.AsyncClient, ctx: NodeContext, number: str
) -> None:
    disp = await login(client, "disp")
    with session_scope(ctx.engine) as session:
        ticket_id = session.exec(select(Ticket.id).where(Ticket.number == number)).one()
        assert ticket_id is not None
        session.add(
            Attachment(
                attachment_id="5b0f6a44-5a43-4e5a-8d0c-6f1b9c8e2a11",
                ticket_id=ticket_id,
                filename="manual.pdf",
                content_type="application/pdf",
                size=5_000_000,
                sha256="d" * 64,
                source_account="globex",
                stored=False,
            )
        )

    response = await client.get(
        f"/api/v1/tickets/{number}/attachments/5b0f6a44-5a43-4e5a-8d0c-6f1b9c8e2a11", headers=disp
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "content not fetched yet"}
    listed = (await client.get(f"/api/v1/tickets/{number}/attachments", headers=disp)).json()
    assert (
        listed["items"][0]["stored"] is False and listed["items"][0]["source_account"] == "globex"
    )


async def test_the_body_limit_middleware_lets_uploads_up_to_the_attachment_limit_through(
    ctx: NodeContext, number: str
) -> None:
    app = FastAPI()
    app.state.ctx = ctx
    app.include_router(user_views.router)
    app.include_router(attachment_views.router)
    install_error_handlers(app)
    app.add_middleware(
        attachment_views.BodyLimits,
        max_bytes=1024,
        upload_max_bytes=MAX + attachment_views.MULTIPART_OVERHEAD,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as client:
        disp = await login(client, "disp")

        upload = await post_file(client, disp, number, b"t" * 3000, content_type="text/plain")
        too_big_json = await client.post(
            "/api/v1/auth/token", content=b"x" * 2000, headers={"Content-Type": "text/plain"}
        )

    assert upload.status_code == 201, upload.text
    assert too_big_json.status_code == 413
