"""The web UI's plain parts: the chain picture's layout, the message catalogue, redirects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from account.tickets import states
from account.web import chain_svg, i18n
from account.web.render import safe_next

WEB = Path(__file__).resolve().parents[2] / "account" / "web"


def node(level: int, partner: str | None, state: str, *children: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{partner}-{level}",
        "partner": partner,
        "partner_label": partner.title() if partner else None,
        "level": level,
        "state": state,
        "status": "in_progress",
        "due": {"response_by": None, "resolve_by": "2026-12-01T17:00:00.000Z"},
        "sla": {"state": "breached" if state == "resolved" else "ok", "events": []},
        "delegations": list(children),
    }


def test_the_chain_is_drawn_top_down_with_parents_centred_over_their_children() -> None:
    tree = [
        node(1, "northwind", "accepted", node(2, "fixit", "resolved"), node(2, None, "offered")),
        node(1, "southwind", "declined"),
    ]
    picture = chain_svg.layout(
        number="ACME-1", status="open", label="ACME", level=0, delegations=tree
    )
    boxes = {b.title: b for b in picture.boxes}
    assert list(boxes) == ["ACME", "Fixit", "undisclosed", "Northwind", "Southwind"]
    root, north = boxes["ACME"], boxes["Northwind"]
    assert root.root and root.note == "ACME-1" and root.y < north.y < boxes["Fixit"].y
    assert north.y == boxes["Southwind"].y
    # Northwind sits over its two children, the root over all three leaves.
    assert north.x == (boxes["Fixit"].x + boxes["undisclosed"].x) // 2
    assert root.x == (boxes["Fixit"].x + boxes["Southwind"].x) // 2
    assert not boxes["undisclosed"].disclosed
    assert boxes["Fixit"].sla == "breached" and boxes["Fixit"].due == "2026-12-01 17:00"
    assert len(picture.edges) == 4
    assert all(0 <= b.x and b.x + chain_svg.BOX_W <= picture.width for b in picture.boxes)
    assert all(b.y + chain_svg.BOX_H <= picture.height for b in picture.boxes)


def test_a_lone_ticket_is_one_box_and_breaches_are_counted_from_the_sla_events() -> None:
    alone = chain_svg.layout(number="N-1", status="new", label="N", level=2, delegations=[])
    assert [(b.title, b.level) for b in alone.boxes] == [("N", 2)]
    assert (alone.width, alone.height) == (chain_svg.BOX_W + 16, chain_svg.BOX_H + 16)

    breached = node(3, "deep", "in_progress")
    breached["sla"] = {
        "state": "breached",
        "events": [
            {"kind": "warning", "clock": "resolution"},
            {"kind": "breach", "clock": "response"},
            {"kind": "breach", "clock": "resolution"},
        ],
    }
    picture = chain_svg.layout(number="N", status="s", label="L", level=2, delegations=[breached])
    assert picture.boxes[1].breaches == 2
    assert "2 breach(es)" in picture.boxes[1].tooltip
    long = chain_svg.layout(
        number="N", status="s", label="A very long company name indeed, Ltd.", level=0,
        delegations=[],
    )  # fmt: skip
    assert len(long.boxes[0].title) <= 24 and long.boxes[0].title.endswith("…")


def _used_messages() -> set[str]:
    pattern = re.compile(r"""\bt\(\s*(?:"([^"]+)"|'([^']+)')""")
    sources = [*WEB.glob("*.py"), *(WEB / "templates").glob("*.html")]
    found = (pattern.findall(path.read_text(encoding="utf-8")) for path in sources)
    return {double or single for matches in found for double, single in matches}


def test_every_message_the_pages_use_has_a_russian_text() -> None:
    used = _used_messages()
    assert len(used) > 100
    missing = sorted(key for key in used if key not in i18n.RU and not key.endswith(":"))
    assert missing == []


@pytest.mark.parametrize(
    ("family", "values"),
    [
        ("status", states.TICKET_STATUSES),
        ("priority", ("critical", "high", "normal", "low")),
        ("sla", ("none", "ok", "at_risk", "breached", "met")),
        ("state", ("offered", "accepted", "declined", "in_progress", "resolved", "confirmed",
                   "recalled")),
        ("vis", ("public", "partner", "internal")),
        ("role", ("admin", "dispatcher", "engineer", "contact")),
    ],
)  # fmt: skip
def test_keyed_families_are_complete_in_russian_and_readable_in_english(
    family: str, values: tuple[str, ...]
) -> None:
    en, ru = i18n.translator("en"), i18n.translator("ru")
    for value in values:
        key = f"{family}:{value}"
        assert key in i18n.RU, key
        assert ":" not in en(key) and "_" not in en(key), key
        assert ru(key) != en(key) or value == "ok", key


def test_translation_falls_back_to_english_and_fills_placeholders() -> None:
    ru = i18n.translator("ru")
    assert ru("Ticket {number} created.", number="ACME-7") == "Заявка ACME-7 создана."
    assert ru("event:some_new_kind") == "some new kind"
    assert ru("A sentence: with a colon") == "A sentence: with a colon"
    assert i18n.translator("en")("status:in_progress") == "in progress"


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "en"),
        ("ru", "en-US,en;q=0.9", "ru"),
        ("xx", "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        (None, "de-DE,de;q=0.9,en;q=0.5,ru;q=0.4", "en"),
        (None, "ru;q=0.1, en;q=0.2", "en"),
        (None, "ru;q=abc", "en"),
        (None, "*", "en"),
    ],
)
def test_the_language_comes_from_the_cookie_then_the_browser(
    cookie: str | None, header: str | None, expected: str
) -> None:
    assert i18n.negotiate(cookie, header) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/tickets?status=open", "/ui/tickets?status=open"),
        ("/ui/links", "/ui/links"),
        (None, "/ui/tickets"),
        ("//evil.example", "/ui/tickets"),
        ("https://evil.example/ui", "/ui/tickets"),
        ("/ui/../../api", "/ui/tickets"),
        ("/ui\\evil", "/ui/tickets"),
        ("/ui/x\r\nSet-Cookie: a=b", "/ui/tickets"),
        ("/api/v1/tickets", "/ui/tickets"),
        ("/ui/x?next=https://evil.example", "/ui/tickets"),
    ],
)
def test_redirects_stay_inside_the_ui(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_a_received_ticket_shows_where_it_came_from_above_it() -> None:
    picture = chain_svg.layout(
        number="L1-4",
        status="in_progress",
        label="Northwind",
        level=1,
        delegations=[node(2, "fixit", "accepted")],
        upstream=("ACME Vendor", "ACME-9"),
    )
    upstream, root, child = picture.boxes
    assert (upstream.title, upstream.level, upstream.note, upstream.upstream) == (
        "ACME Vendor", 0, "ACME-9", True,
    )  # fmt: skip
    assert upstream.y < root.y < child.y and root.root and root.level == 1
    assert len(picture.edges) == 2
    assert picture.height == 2 * 8 + 3 * chain_svg.BOX_H + 2 * 40


def test_the_picture_and_the_catalogue_are_plain_python() -> None:
    import ast

    for name in ("chain_svg.py", "i18n.py"):
        tree = ast.parse((WEB / name).read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
            for alias in n.names
        } | {
            n.module.split(".")[0] for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
        }  # fmt: skip
        assert imported <= {"__future__", "collections", "dataclasses", "typing"}, name
