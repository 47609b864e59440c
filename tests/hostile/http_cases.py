"""Hostile HTTP requests against one node, as data: each case says what it sends and expects.

A case's ``run`` sends its request(s) and returns a ``Got`` (what came back, and whether that
is what was expected). ``check`` wraps every case in the suite's contract: the database and
the data directory are unchanged afterwards (unless the case stores on purpose and checked
what it stored itself) and a normal request succeeds right after. Used by
``tests/hostile/test_http.py`` and by ``python -m tests.hostile``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from account import security
from exchange.signing import generate_key, kid_of
from tests.hostile.world import MAX_BODY, MAX_UPLOAD, NODE, PASSWORD, PNG, SECRET, World

__all__ = ["CASES", "Case", "Got", "Verdict", "check"]

SQLI = ["'; DROP TABLE ticket; --", "' OR '1'='1", "1; SELECT pg_sleep(5)--", '" OR ""="']
XSS = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "{{7*7}}${7*7}"]
UNAUTHORIZED = {"detail": "not authenticated"}


@dataclass(frozen=True)
class Got:
    """What the node answered and whether it is what the case expected."""

    summary: str
    ok: bool


@dataclass(frozen=True)
class Case:
    """One hostile input: its id, group, what must happen, and how to send it."""

    id: str
    group: str
    expected: str
    run: Callable[[World], Awaitable[Got]]
    stores: bool = False  # stores on purpose (and checks what it stored itself)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one case under the suite's contract."""

    case: Case
    got: str
    unchanged: bool
    serving: bool

    @property
    def passed(self) -> bool:
        return self.got.startswith("ok:") and self.unchanged and self.serving


async def check(world: World, case: Case) -> Verdict:
    """Run ``case`` and check the suite's contract around it."""
    before = world.fingerprint()
    try:
        got = await case.run(world)
    except Exception as exc:  # an app exception escaping ASGI: a 500 for a real client
        got = Got(f"server error: {type(exc).__name__}: {str(exc)[:60]}", False)
    unchanged = case.stores or world.fingerprint() == before
    serving = await world.serving()
    return Verdict(case, ("ok: " if got.ok else "FAIL: ") + got.summary, unchanged, serving)


CASES: list[Case] = []


def case(
    group: str, expected: str, *, stores: bool = False
) -> Callable[[Callable[[World], Awaitable[Got]]], Callable[[World], Awaitable[Got]]]:
    def register(run: Callable[[World], Awaitable[Got]]) -> Callable[[World], Awaitable[Got]]:
        CASES.append(Case(run.__name__, group, expected, run, stores))
        return run

    return register


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def refused(response: httpx.Response, *codes: int, body: Any = None) -> Got:
    """A 4xx in ``codes`` with a JSON ``{"detail": ...}`` (equal to ``body`` when given)."""
    data = _json(response)
    shaped = isinstance(data, dict) and "detail" in data
    ok = response.status_code in codes and shaped and (body is None or data == body)
    detail = data.get("detail") if isinstance(data, dict) else response.text[:80]
    return Got(f"{response.status_code} {str(detail)[:70]}", ok)


def stored(response: httpx.Response, sent: dict[str, Any], got: dict[str, Any]) -> Got:
    """2xx, and every sent text field comes back exactly as sent."""
    wrong = [key for key, value in sent.items() if got.get(key) != value]
    ok = response.is_success and not wrong
    return Got(
        f"{response.status_code} stored literally" + (f", differs: {wrong}" if wrong else ""), ok
    )


def _raw_json(world: World, user: str, text: str) -> dict[str, Any]:
    return {
        "content": text.encode("utf-8", "surrogatepass"),
        "headers": world.auth(user) | {"content-type": "application/json"},
    }


# -- SQL injection and script strings in every text field: stored literally -------------------


@case("text fields", "201, every ticket field stored literally, one row more", stores=True)
async def sqli_and_script_in_every_ticket_field(world: World) -> Got:
    before = world.counts()
    fields = {
        "title": SQLI[0],
        "description": XSS[0] + SQLI[1],
        "category": SQLI[1],
        "assignee": XSS[1][:100],
        "organisation": SQLI[2],
    }
    service = {"site": SQLI[3], "address": XSS[1], "equipment": XSS[2]}
    requester = {"name": SQLI[0], "email": XSS[1], "phone": SQLI[1], "organisation": XSS[0]}
    made = await world.client.post(
        "/api/v1/tickets",
        json=fields | {"service_object": service, "requester": requester},
        headers=world.auth("disp"),
    )
    if made.status_code != 201:
        return refused(made)
    number = made.json()["number"]
    read = (await world.client.get(f"/api/v1/tickets/{number}", headers=world.auth("disp"))).json()
    after = world.counts()
    grown = {name for name in after if after[name] != before[name]}
    nested_ok = read["service_object"] == service and read["requester"] == requester
    result = stored(made, fields, read)
    ok = result.ok and nested_ok and after["ticket"] == before["ticket"] + 1
    return Got(f"{result.summary}; tables grown: {sorted(grown)}", ok)


@case("text fields", "201, comment, patch, status note and addendum stored literally", stores=True)
async def sqli_and_script_in_comments_patch_and_notes(world: World) -> Got:
    number = world.tickets["Bank North"]
    auth = world.auth("disp")
    comment = await world.client.post(
        f"/api/v1/tickets/{number}/comments", json={"body": SQLI[0] + XSS[0]}, headers=auth
    )
    patch = {"title": XSS[1], "description": SQLI[1], "category": SQLI[3]}
    patched = await world.client.patch(f"/api/v1/tickets/{number}", json=patch, headers=auth)
    note = await world.client.post(
        f"/api/v1/tickets/{number}/status", json={"status": "open", "note": SQLI[2]}, headers=auth
    )
    comments = await world.client.get(f"/api/v1/tickets/{number}/comments", headers=auth)
    bodies = [c["body"] for c in comments.json()["items"]]
    timeline = json.dumps(
        (await world.client.get(f"/api/v1/tickets/{number}/timeline", headers=auth)).json()
    )
    ok = (
        comment.status_code == 201
        and stored(patched, patch, patched.json()).ok
        and note.status_code == 200
        and SQLI[0] + XSS[0] in bodies
        and json.dumps(SQLI[2])[1:-1] in timeline
    )
    return Got(f"{comment.status_code}/{patched.status_code}/{note.status_code} stored", ok)


@case("text fields", "201, user and API key fields stored literally", stores=True)
async def sqli_and_script_in_user_fields(world: World) -> Got:
    user = {"full_name": SQLI[0], "email": XSS[1], "organisation": SQLI[1]}
    made = await world.client.post(
        "/api/v1/users",
        json=user
        | {"username": f"u{time.monotonic_ns()}", "password": PASSWORD, "role": "contact"},
        headers=world.auth("root"),
    )
    key = await world.client.post(
        "/api/v1/users/me/api-keys", json={"name": SQLI[3] + XSS[0]}, headers=world.auth("root")
    )
    result = stored(made, user, made.json())
    ok = result.ok and key.status_code == 201 and key.json().get("name") == SQLI[3] + XSS[0]
    return Got(f"{result.summary}, api key {key.status_code}", ok)


@case("text fields", "201: an invitation whose note is an injection string", stores=True)
async def sqli_and_script_in_invitation_note(world: World) -> Got:
    made = await world.client.post(
        "/api/v1/links/invitations", json={"note": SQLI[0] + XSS[0]}, headers=world.auth("root")
    )
    return Got(f"{made.status_code} invitation", made.status_code == 201 and "token" in made.json())


@case("text fields", "200, q/status/partner filters are data: no extra rows, nothing for junk")
async def sqli_in_list_filters(world: World) -> Got:
    auth = world.auth("alice")
    north = await world.client.get("/api/v1/tickets", headers=auth)
    probes = [
        await world.client.get("/api/v1/tickets", params={"q": q}, headers=auth) for q in SQLI
    ]
    bad_status = await world.client.get(
        "/api/v1/tickets", params={"status": "open' OR '1'='1"}, headers=auth
    )
    partner = await world.client.get("/api/v1/tickets", params={"partner": SQLI[1]}, headers=auth)
    visible = north.json()["total"]
    extra = [
        p.json()["total"] for p in probes if p.status_code != 200 or p.json()["total"] > visible
    ]
    ok = (
        not extra
        and bad_status.status_code in (200, 400, 422)
        and (bad_status.status_code != 200 or bad_status.json()["total"] == 0)
        and partner.status_code == 200
        and partner.json()["total"] == 0
    )
    return Got(
        f"q: {[p.json()['total'] for p in probes]} of {visible}; status {bad_status.status_code}",
        ok,
    )


@case("text fields", "web UI shows script strings escaped, never as markup", stores=True)
async def script_strings_render_escaped_in_the_web_ui(world: World) -> Got:
    title = '<script>alert("tix")</script>'
    made = await world.client.post(
        "/api/v1/tickets",
        json={"title": title, "description": XSS[1], "service_object": {"site": XSS[1]}},
        headers=world.auth("disp"),
    )
    number = made.json()["number"]
    await world.client.post(
        f"/api/v1/tickets/{number}/comments", json={"body": XSS[1]}, headers=world.auth("disp")
    )
    transport = world.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.test") as browser:
        form = await browser.get("/ui/login")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        await browser.post(
            "/ui/login", data={"username": "disp", "password": PASSWORD, "csrf": csrf}
        )
        page = await browser.get(f"/ui/tickets/{number}")
        listing = await browser.get("/ui/tickets")
    raw = [t for t in (title, XSS[1]) if t in page.text or t in listing.text]
    escaped = "&lt;script&gt;" in page.text and "&lt;script&gt;" in listing.text
    ok = page.status_code == 200 and not raw and escaped
    return Got(f"{page.status_code}, raw markup found: {len(raw)}, escaped: {escaped}", ok)


# -- JWTs: 401 with one uniform body ------------------------------------------------------------


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": security.access_issuer(NODE),
        "aud": security.access_audience(NODE),
        "sub": "root",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    for key, value in over.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _hs(claims: dict[str, Any], key: bytes = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "at+jwt", **headers})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "at+jwt"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hs_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """HS256 with any key, even one pyjwt refuses to use (empty)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    signing_input = f"{head}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _token_case(name: str, make: Callable[[World], str]) -> None:
    async def run(world: World) -> Got:
        response = await world.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {make(world)}"}
        )
        return refused(response, 401, body=UNAUTHORIZED)

    run.__name__ = name
    case("JWT", "401 {detail: not authenticated}")(run)


def _eddsa_with_node_key(world: World) -> str:
    return jwt.encode(
        _claims(), world.ctx.identity.key, algorithm="EdDSA", headers={"typ": "at+jwt"}
    )


def _hs_keyed_with_public_key(world: World) -> str:
    public = world.ctx.identity.public_key.encode()  # the classic RS/HS confusion, on EdDSA
    return _hs(_claims(), public)


_token_case("jwt_forged_with_another_secret", lambda w: _hs(_claims(), b"y" * 48))
_token_case(
    "jwt_expired",
    lambda w: _hs(_claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200, nbf=None)),
)
_token_case("jwt_alg_none", lambda w: _unsigned(_claims()))
_token_case("jwt_alg_none_uppercase", lambda w: _unsigned(_claims(), "NONE"))
_token_case("jwt_eddsa_signed_by_the_node_key", _eddsa_with_node_key)
_token_case("jwt_hs256_keyed_with_the_public_key", _hs_keyed_with_public_key)
_token_case("jwt_wrong_audience", lambda w: _hs(_claims(aud="tix:other:api")))
_token_case("jwt_wrong_issuer", lambda w: _hs(_claims(iss="tix:other")))
_token_case("jwt_issuer_substring", lambda w: _hs(_claims(iss="tix:acm")))
_token_case("jwt_audience_list", lambda w: _hs(_claims(aud=["tix:other:api", "tix:acme:api"])))
_token_case("jwt_missing_exp", lambda w: _hs(_claims(exp=None)))
_token_case("jwt_missing_sub", lambda w: _hs(_claims(sub=None)))
_token_case(
    "jwt_issued_in_the_future",
    lambda w: _hs(_claims(iat=int(time.time()) + 3600, nbf=int(time.time()) + 3600)),
)
_token_case(
    "jwt_kid_path_traversal", lambda w: _hs(_claims(), b"x" * 48, kid="../../../../dev/null")
)
_token_case(
    "jwt_kid_sql_injection", lambda w: _hs(_claims(), b"x" * 48, kid="' UNION SELECT 'x'*48 --")
)
_token_case("jwt_kid_url", lambda w: _hs(_claims(), b"x" * 48, kid="http://127.0.0.1:9/key"))
_token_case("jwt_unknown_crit", lambda w: _hs(_claims(), crit=["exp"]))
_token_case("jwt_without_typ", lambda w: jwt.encode(_claims(), SECRET, algorithm="HS256"))
_token_case("jwt_empty_hmac_key", lambda w: _hs_by_hand(_claims(), b""))
_token_case("jwt_invitation_token_as_access_token", lambda w: w.invitation)
_token_case("jwt_oversize", lambda w: _hs(_claims(pad="x" * 6000)))
_token_case("jwt_unknown_user", lambda w: _hs(_claims(sub="' OR 1=1 --")))
_token_case("api_key_guessed", lambda w: "tix_" + "A" * 43)


# -- invitations ----------------------------------------------------------------------------------


def _reforged_invitation(world: World, **over: Any) -> str:
    claims = jwt.decode(world.invitation, options={"verify_signature": False})
    header = jwt.get_unverified_header(world.invitation)
    claims.update(over)
    return jwt.encode(claims, world.partner_key, algorithm="EdDSA", headers=header)


def _invitation_case(name: str, expected: str, make: Callable[[World], str], *codes: int) -> None:
    async def run(world: World) -> Got:
        response = await world.client.post(
            "/api/v1/links/accept", json={"token": make(world)}, headers=world.auth("root")
        )
        return refused(response, *codes)

    run.__name__ = name
    case("invitations", expected)(run)


def _tampered(world: World) -> str:
    head, payload, sig = world.invitation.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["contract"] = {"auto_accept": True}
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


def _signed_by_another_key(world: World) -> str:
    claims = jwt.decode(world.invitation, options={"verify_signature": False})
    header = jwt.get_unverified_header(world.invitation)
    return jwt.encode(claims, generate_key(), algorithm="EdDSA", headers=header)


def _carrying_another_key(world: World) -> str:
    other = generate_key()
    from exchange.signing import public_key_b64

    claims = jwt.decode(world.invitation, options={"verify_signature": False})
    claims |= {"pub": public_key_b64(other), "kid": kid_of(other.public_key())}
    header = jwt.get_unverified_header(world.invitation) | {"kid": claims["kid"]}
    return jwt.encode(claims, world.partner_key, algorithm="EdDSA", headers=header)


_invitation_case(
    "invitation_reused", "409 already used / already linked", lambda w: w.used_invitation, 409
)
_invitation_case(
    "invitation_expired",
    "400 invitation expired",
    lambda w: _reforged_invitation(
        w, iat=int(time.time()) - 9 * 86400, exp=int(time.time()) - 86400
    ),
    400,
)
_invitation_case("invitation_tampered_contract", "400 signature invalid", _tampered, 400)
_invitation_case(
    "invitation_signed_by_another_key", "400 signature invalid", _signed_by_another_key, 400
)
_invitation_case("invitation_carrying_another_key", "400 key mismatch", _carrying_another_key, 400)
_invitation_case(
    "invitation_alg_none", "400 not an invitation", lambda w: _unsigned({"sub": "x"}), 400
)
_invitation_case(
    "invitation_access_token",
    "400 not an invitation",
    lambda w: w.auth("root")["Authorization"][7:],
    400,
)
_invitation_case("invitation_sqli", "400/422 not an invitation", lambda w: SQLI[1] * 3, 400, 422)


@case("invitations", "403: a contact cannot accept an invitation")
async def invitation_accepted_by_a_contact(world: World) -> Got:
    response = await world.client.post(
        "/api/v1/links/accept", json={"token": world.invitation}, headers=world.auth("alice")
    )
    return refused(response, 403)


# -- a contact of one organisation against another's tickets -------------------------------------


def _endpoints(number: str, attachment: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/api/v1/tickets/{number}"
    return [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"title": "mine now"}}),
        ("POST", f"{base}/status", {"json": {"status": "open"}}),
        ("GET", f"{base}/comments", {}),
        ("POST", f"{base}/comments", {"json": {"body": "hello", "visibility": "public"}}),
        ("GET", f"{base}/timeline", {}),
        ("GET", f"{base}/chain", {}),
        ("GET", f"{base}/attachments", {}),
        ("GET", f"{base}/attachments/{attachment}", {}),
        ("POST", f"{base}/attachments", {"files": {"file": ("a.png", PNG, "image/png")}}),
        ("POST", f"{base}/rating", {"json": {"score": 1, "comment": "bad"}}),
        ("POST", f"{base}/accept", {}),
        ("POST", f"{base}/decline", {"json": {"reason": "no"}}),
        ("POST", f"{base}/delegations", {"json": {"partner": "gamma"}}),
    ]


@case("tenancy", "404 (403 for role-forbidden functions) exactly as for a missing ticket")
async def contact_reaches_another_organisations_ticket(world: World) -> Got:
    theirs = _endpoints(world.tickets["Bank South"], world.attachments["Bank South"])
    missing = _endpoints("ACME-999999", world.attachments["Bank South"])
    leaks = []
    for (method, url, kwargs), (_, ghost_url, _) in zip(theirs, missing, strict=True):
        got = await world.client.request(method, url, headers=world.auth("alice"), **kwargs)
        ghost = await world.client.request(method, ghost_url, headers=world.auth("alice"), **kwargs)
        # 404 like a missing ticket; or 403 when the role may never do it, on any ticket.
        same = _json(got) == _json(ghost) and got.status_code == ghost.status_code
        if got.status_code not in (403, 404) or not same or "detail" not in (_json(got) or {}):
            leaks.append(f"{method} {url.rsplit('/', 1)[-1]}: {got.status_code}")
    return Got(f"{len(theirs)} endpoints, leaks: {leaks or 'none'}", not leaks)


@case("tenancy", "404: a South attachment id under a North ticket number")
async def attachment_id_under_another_ticket(world: World) -> Got:
    north, south = world.tickets["Bank North"], world.attachments["Bank South"]
    url = f"/api/v1/tickets/{north}/attachments/{south}"
    return refused(await world.client.get(url, headers=world.auth("alice")), 404)


@case("tenancy", "200: lists and searches show only the contact's own organisation")
async def contact_lists_only_own_organisation(world: World) -> Got:
    auth = world.auth("alice")
    listed = (await world.client.get("/api/v1/tickets", headers=auth)).json()
    searched = (
        await world.client.get("/api/v1/tickets", params={"q": "South"}, headers=auth)
    ).json()
    foreign = [t["number"] for t in listed["items"] if t.get("organisation") not in ("Bank North",)]
    ok = not foreign and searched["total"] == 0 and listed["total"] >= 1
    return Got(f"listed {listed['total']}, foreign {foreign}, search South {searched['total']}", ok)


@case("tenancy", "200 and nothing: a contact without an organisation sees no ticket")
async def contact_without_organisation_lists_nothing(world: World) -> Got:
    response = await world.client.get("/api/v1/tickets", headers=world.auth("carol"))
    data = _json(response)
    ok = response.status_code == 200 and isinstance(data, dict) and data.get("total") == 0
    return Got(f"{response.status_code} {str(data)[:60]}", ok)


@case(
    "tenancy", "a contact's ticket lands in their own organisation, whatever it asks", stores=True
)
async def contact_cannot_file_into_another_organisation(world: World) -> Got:
    made = await world.client.post(
        "/api/v1/tickets",
        json={"title": "mass assignment", "organisation": "Bank South"},
        headers=world.auth("alice"),
    )
    if made.status_code != 201:
        return refused(made, 400, 403, 422)
    org = made.json().get("organisation")
    return Got(f"201 organisation={org}", org == "Bank North")


@case("tenancy", "403 for admin functions and reports as a contact")
async def contact_calls_admin_functions(world: World) -> Got:
    urls = [
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/links"),
        ("GET", "/api/v1/admin/rejected"),
        ("GET", "/api/v1/admin/outbox"),
        ("POST", "/api/v1/admin/outbox/retry"),
        ("GET", "/api/v1/reports/partners"),
        ("GET", "/api/v1/reports/sla"),
        ("GET", "/api/v1/reports/time-by-level"),
        ("POST", "/api/v1/links/invitations"),
    ]
    wrong = []
    for method, url in urls:
        kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
        got = await world.client.request(method, url, headers=world.auth("alice"), **kwargs)
        if got.status_code != 403 or "detail" not in (_json(got) or {}):
            wrong.append(f"{method} {url}: {got.status_code}")
    return Got(f"{len(urls)} functions, wrong: {wrong or 'none'}", not wrong)


@case("tenancy", "PATCH cannot set account, organisation, status or number (422)")
async def mass_assignment_in_patch(world: World) -> Got:
    url = f"/api/v1/tickets/{world.tickets['Bank North']}"
    codes = []
    for field in (
        {"organisation": "Bank South"},
        {"account_id": "evil"},
        {"status": "closed"},
        {"number": "X-1"},
    ):
        got = await world.client.patch(url, json=field, headers=world.auth("disp"))
        codes.append(got.status_code)
    return Got(f"{codes}", all(code == 422 for code in codes))


# -- attachments ---------------------------------------------------------------------------------


def _upload_case(name: str, expected: str, file: tuple[str, bytes, str], *codes: int) -> None:
    async def run(world: World) -> Got:
        response = await world.client.post(
            f"/api/v1/tickets/{world.tickets['Bank North']}/attachments",
            files={"file": file},
            headers=world.auth("disp"),
        )
        return refused(response, *codes)

    run.__name__ = name
    case("attachments", expected)(run)


_upload_case(
    "attachment_too_large",
    "413",
    ("big.bin", b"\x01" * (MAX_UPLOAD + 1), "application/octet-stream"),
    413,
)
_upload_case(
    "attachment_png_declared_pdf", "415 content mismatch", ("x.pdf", PNG, "application/pdf"), 415
)
_upload_case(
    "attachment_html_declared_png",
    "415 content mismatch",
    ("x.png", b"<html><script>alert(1)</script>", "image/png"),
    415,
)
_upload_case(
    "attachment_exe_declared_text",
    "415 content mismatch",
    ("x.txt", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "text/plain"),
    415,
)
_upload_case(
    "attachment_pdf_declared_jpeg",
    "415 content mismatch",
    ("x.jpg", b"%PDF-1.7\n%\xe2\xe3", "image/jpeg"),
    415,
)


@case("attachments", "413 for a streamed (chunked) upload over the limit")
async def attachment_streamed_over_the_limit(world: World) -> Got:
    boundary = "hostileboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    async def body() -> Any:
        yield head
        for _ in range(8):
            yield b"\x02" * (MAX_UPLOAD // 4)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await world.client.post(
        f"/api/v1/tickets/{world.tickets['Bank North']}/attachments",
        content=body(),
        headers=world.auth("disp") | {"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    return refused(response, 413)


@case("attachments", "4xx, or 201 with the NUL escaped in the stored name", stores=True)
async def attachment_nul_in_filename(world: World) -> Got:
    response = await world.client.post(
        f"/api/v1/tickets/{world.tickets['Bank North']}/attachments",
        files={"file": ("a\x00.png", PNG, "image/png")},
        headers=world.auth("disp"),
    )
    if response.status_code == 201:  # acceptable if the name was cleaned, not stored raw
        name = response.json()["filename"]
        return Got(f"201 filename={name!r}", "\x00" not in name)
    return refused(response, 400, 415, 422)


# -- bodies: size, shape, JSON traps ---------------------------------------------------------------


def _body_case(
    name: str, expected: str, text: str, *codes: int, path: str = "/api/v1/tickets"
) -> None:
    async def run(world: World) -> Got:
        return refused(await world.client.post(path, **_raw_json(world, "disp", text)), *codes)

    run.__name__ = name
    case("JSON bodies", expected)(run)


_body_case(
    "json_over_the_body_limit",
    "413",
    json.dumps({"title": "x", "description": "d" * MAX_BODY}),
    413,
)
_body_case(
    "json_array_of_1e5_items",
    "413 (over the cap) before parsing",
    '{"title": "x", "tags": [' + ",".join(["1"] * 100_000) + "]}",
    413,
)
_body_case(
    "json_nested_10k_deep",
    "413 or 400, never a crash",
    '{"title": "x", "description": ' + "[" * 10_000 + "]" * 10_000 + "}",
    400,
    413,
)
_body_case(
    "json_nested_100_deep",
    "400 nested too deep",
    '{"title": "x", "service_object": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}",
    400,
)
_body_case("json_truncated", "422 JSON invalid", '{"title": "x", ', 400, 422)
_body_case("json_trailing_garbage", "422 JSON invalid", '{"title": "x"} {"title": "y"}', 400, 422)
_body_case("json_duplicate_keys", "400 duplicate key", '{"title": "x", "title": "y"}', 400)
_body_case("json_nan", "400 NaN refused", '{"title": "x", "priority": NaN}', 400)
_body_case("json_infinity", "400 Infinity refused", '{"title": "x", "score": -Infinity}', 400)
_body_case(
    "json_5000_digit_integer", "400", '{"title": "x", "priority": ' + "9" * 5000 + "}", 400, 422
)
_body_case("json_byte_order_mark", "400/422", '\ufeff{"title": "x"}', 400, 422)
_body_case("json_not_an_object", "422", '["title", "x"]', 422)
_body_case(
    "json_unknown_field", "422 extra field forbidden", '{"title": "x", "account_id": "evil"}', 422
)
_body_case("json_wrong_types", "422", '{"title": {"$ne": null}, "priority": ["high"]}', 422)
_body_case("json_huge_string_field", "422 over max_length", json.dumps({"title": "t" * 5000}), 422)


@case("JSON bodies", "413 for a chunked body over the limit (no Content-Length)")
async def json_streamed_over_the_limit(world: World) -> Got:
    async def body() -> Any:
        yield b'{"title": "x", "description": "'
        for _ in range(4):
            yield b"d" * (MAX_BODY // 2)
        yield b'"}'

    response = await world.client.post(
        "/api/v1/tickets",
        content=body(),
        headers=world.auth("disp") | {"content-type": "application/json"},
    )
    return refused(response, 413)


@case("JSON bodies", "400: invalid UTF-8 bytes in a JSON body")
async def json_invalid_utf8(world: World) -> Got:
    response = await world.client.post(
        "/api/v1/tickets",
        content=b'{"title": "\xc0\xaf\xed\xa0\x80"}',
        headers=world.auth("disp") | {"content-type": "application/json"},
    )
    return refused(response, 400, 422)


# -- unicode edge cases ---------------------------------------------------------------------------

_body_case("unicode_lone_surrogate_in_title", "400 lone surrogate", '{"title": "a\\ud800b"}', 400)
_body_case(
    "unicode_lone_low_surrogate_in_comment",
    "400 lone surrogate",
    '{"body": "\\udfff"}',
    400,
    path="/api/v1/tickets/ACME-1/comments",
)
_body_case("unicode_nul_in_title", "400 NUL", '{"title": "a\\u0000b"}', 400)
_body_case("unicode_nul_in_key", "400 NUL", '{"title": "a", "x\\u0000": 1}', 400)


@case("unicode", "400: NUL in a query parameter, the path and a login form")
async def unicode_nul_in_url_and_form(world: World) -> Got:
    query = await world.client.get("/api/v1/tickets?q=a%00b", headers=world.auth("disp"))
    path = await world.client.get("/api/v1/tickets/ACME-1%00", headers=world.auth("disp"))
    link = await world.client.get("/api/v1/links/%00", headers=world.auth("root"))
    form = await world.client.post(
        "/api/v1/auth/token", data={"username": "root\x00", "password": PASSWORD}
    )
    codes = [r.status_code for r in (query, path, link, form)]
    ok = all(refused(r, 400).ok for r in (query, path, link, form))
    return Got(f"{codes}", ok)


@case(
    "unicode", "201: RTL override, zero-width, NFD and non-BMP text stored literally", stores=True
)
async def unicode_edge_text_is_stored_literally(world: World) -> Got:
    fields = {
        "title": "invoice\u202egnp.exe \U0001f525",
        "description": "e\u0301 vs \u00e9, zero\u200bwidth, \U00010348 gothic, \ufeff inside",
        "category": "\U0001f600" * 50,
    }
    made = await world.client.post("/api/v1/tickets", json=fields, headers=world.auth("disp"))
    if made.status_code != 201:
        return refused(made)
    number = made.json()["number"]
    read = (await world.client.get(f"/api/v1/tickets/{number}", headers=world.auth("disp"))).json()
    found = await world.client.get(
        "/api/v1/tickets", params={"q": "\U0001f525"}, headers=world.auth("disp")
    )
    result = stored(made, fields, read)
    return Got(
        f"{result.summary}; search by emoji {found.json()['total']}",
        result.ok and found.json()["total"] >= 1,
    )


# -- found by schemathesis (tests/hostile/test_openapi_fuzz.py), kept as plain cases ------------


@case("schemathesis finds", "422: offsets and ids beyond 64 bits (were 500, integer overflow)")
async def numbers_beyond_64_bits(world: World) -> Got:
    huge = str(2**64)
    auth = world.auth("root")
    answers = [
        await world.client.get("/api/v1/tickets", params={"offset": huge}, headers=auth),
        await world.client.get("/api/v1/users", params={"offset": huge}, headers=auth),
        await world.client.get("/api/v1/admin/rejected", params={"offset": huge}, headers=auth),
        await world.client.delete(f"/api/v1/users/me/api-keys/{huge}", headers=auth),
        await world.client.patch(f"/api/v1/users/{huge}", json={}, headers=auth),
    ]
    codes = [a.status_code for a in answers]
    return Got(f"{codes}", all(refused(a, 422).ok for a in answers))


@case("schemathesis finds", "400: PATCH null for title/description/priority (was 500)")
async def patch_null_into_required_fields(world: World) -> Got:
    url = f"/api/v1/tickets/{world.tickets['Bank North']}"
    answers = [
        await world.client.patch(url, json={name: None}, headers=world.auth("disp"))
        for name in ("title", "description", "priority")
    ]
    codes = [a.status_code for a in answers]
    return Got(f"{codes}", all(refused(a, 400).ok for a in answers))


@case("schemathesis finds", "200 at once: outbox retry on SQLite (waited 60 s for the pool, 500)")
async def outbox_retry_on_a_single_connection_pool(world: World) -> Got:
    response = await world.client.post("/api/v1/admin/outbox/retry", headers=world.auth("root"))
    return Got(f"{response.status_code} {response.text[:40]}", response.status_code == 200)


@case("attachments", "201 with a plain file name: no path survives", stores=True)
async def attachment_path_in_filename(world: World) -> Got:
    response = await world.client.post(
        f"/api/v1/tickets/{world.tickets['Bank North']}/attachments",
        files={"file": ("../../etc/passwd", PNG, "image/png")},
        headers=world.auth("disp"),
    )
    if response.status_code != 201:
        return refused(response, 400, 422)
    name = response.json()["filename"]
    return Got(f"201 filename={name!r}", "/" not in name and "\\" not in name)


@case("unicode", "400 as a TMF Error on the TMF621 facade: NUL and duplicate keys")
async def tmf_facade_refuses_in_its_own_error_shape(world: World) -> Got:
    url = "/tmf-api/troubleTicket/v5/troubleTicket"
    texts = [
        '{"description": "a\\u0000b", "severity": "Major"}',
        '{"description": "a", "description": "b"}',
    ]
    answers = [await world.client.post(url, **_raw_json(world, "disp", text)) for text in texts]
    shaped = all(
        a.status_code == 400 and (_json(a) or {}).get("@type") == "Error" and "detail" in a.json()
        for a in answers
    )
    return Got(f"{[a.status_code for a in answers]} TMF Error: {shaped}", shaped)


@case("JWT", "401, one body: user, invitation, alg-none and unlinked node tokens at federation")
async def wrong_tokens_at_the_federation_endpoint(world: World) -> Got:
    from account.attachments.tokens import NODE_TOKEN_TYP, mint_node_token
    from account.context import Identity

    listed = await world.client.get(
        f"/api/v1/tickets/{world.tickets['Bank North']}/attachments", headers=world.auth("disp")
    )
    digest = listed.json()["items"][0]["sha256"]
    stranger = Identity(account_id="gamma", label="Gamma", key=generate_key())
    claims = {"iss": "gamma", "aud": f"tix:{NODE}:federation", "sub": digest}
    none_header = _b64(json.dumps({"alg": "none", "typ": NODE_TOKEN_TYP}).encode())
    tokens = {
        "user access token": world.auth("root")["Authorization"][7:],
        "invitation": world.invitation,
        "alg none": f"{none_header}.{_b64(json.dumps(claims).encode())}.",
        "unlinked node key": mint_node_token(
            identity=stranger, audience_account=NODE, subject=digest
        ),
    }
    answers = {
        name: await world.client.get(
            f"/api/v1/federation/attachments/{digest}", headers={"Authorization": f"Bearer {t}"}
        )
        for name, t in tokens.items()
    }
    bodies = {json.dumps(_json(a)) for a in answers.values()}
    codes = {name: a.status_code for name, a in answers.items()}
    ok = set(codes.values()) == {401} and len(bodies) == 1
    return Got(f"{sorted(set(codes.values()))}, distinct bodies: {len(bodies)}", ok)


@case("text fields", "303 to a page of this node only: no open redirect through next=")
async def open_redirect_through_next(world: World) -> Got:
    targets = [
        "https://evil.example/",
        "//evil.example/ui",
        "/\\evil.example",
        "/ui/../../evil",
        "/ui\r\nLocation: https://evil.example",
        "javascript:alert(1)",
    ]
    wrong = []
    for target in targets:
        answer = await world.client.get("/ui/lang/en", params={"next": target})
        location = answer.headers.get("location", "")
        if answer.status_code != 303 or not location.startswith("/ui") or "evil" in location:
            wrong.append(f"{target!r} -> {answer.status_code} {location!r}")
    return Got(f"{len(targets)} targets, escaped: {wrong or 'none'}", not wrong)
