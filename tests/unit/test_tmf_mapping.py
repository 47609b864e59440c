"""The pure TMF621 mapping: statuses both ways, priorities, events, hub queries, callbacks,
provenance and parties, rendering against the specification's schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from account.tickets.states import TICKET_STATUSES
from account.tmf import mapping
from tests.support.tmf import schema_errors
from tests.unit.test_layering import FRAMEWORKS, ROOT, imported_modules

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_the_mapping_module_is_pure() -> None:
    names = imported_modules(ROOT / "account/tmf/mapping.py")
    assert [n for n in names if n.split(".")[0] in FRAMEWORKS] == []


def test_every_tix_status_maps_to_a_tmf_status() -> None:
    assert set(mapping.STATUS_TO_TMF) == set(TICKET_STATUSES)
    assert set(mapping.STATUS_TO_TMF.values()) <= set(mapping.TMF_STATUSES)
    enum = schema_enum()
    assert set(mapping.TMF_STATUSES) == set(enum)


def schema_enum() -> list[str]:
    from tests.support.tmf import spec

    values: list[str] = spec()["components"]["schemas"]["TroubleTicketStatusType"]["enum"]
    return values


@pytest.mark.parametrize(
    ("local", "delegations", "expected"),
    [
        ("new", [], "acknowledged"),
        ("open", ["offered"], "acknowledged"),
        ("open", ["accepted"], "inProgress"),
        ("open", ["in_progress", "resolved"], "inProgress"),
        ("open", ["resolved", "confirmed"], "resolved"),
        ("open", ["resolved", "declined", "recalled"], "resolved"),
        ("open", ["declined"], "acknowledged"),
        ("in_progress", [], "inProgress"),
        ("reopened", ["resolved"], "resolved"),
        ("on_hold", ["resolved"], "pending"),
        ("resolved", ["in_progress"], "resolved"),
        ("closed", [], "closed"),
        ("declined", [], "rejected"),
        ("cancelled", ["resolved"], "cancelled"),
        ("offered", [], "acknowledged"),
    ],
)
def test_status_follows_the_chain_below_while_the_ticket_is_open(
    local: str, delegations: list[str], expected: str
) -> None:
    assert mapping.tmf_status(local, delegations) == expected


@given(
    st.sampled_from(TICKET_STATUSES),
    st.lists(
        st.sampled_from(
            ["offered", "accepted", "in_progress", "resolved", "confirmed", "declined", "recalled"]
        ),
        max_size=4,
    ),
)
def test_a_status_filter_candidate_set_always_holds_the_ticket(
    local: str, delegations: list[str]
) -> None:
    status = mapping.tmf_status(local, delegations)
    assert local in mapping.local_statuses_for(status)


@pytest.mark.parametrize(
    ("tmf", "current", "target"),
    [
        ("inProgress", "new", "in_progress"),
        ("inProgress", "resolved", "reopened"),
        ("inProgress", "in_progress", "in_progress"),
        ("pending", "in_progress", "on_hold"),
        ("held", "in_progress", "on_hold"),
        ("resolved", "in_progress", "resolved"),
        ("closed", "resolved", "closed"),
        ("cancelled", "open", "cancelled"),
        ("acknowledged", "open", "open"),
        ("acknowledged", "in_progress", None),
        ("rejected", "new", None),
    ],
)
def test_a_requested_tmf_status_becomes_a_local_target(
    tmf: str, current: str, target: str | None
) -> None:
    assert mapping.local_target(tmf, current) == target


def test_priority_and_severity_both_ways() -> None:
    assert mapping.priority_in("High", "Minor") == "high"  # priority wins
    assert mapping.priority_in(None, "major") == "high"
    assert mapping.priority_in(" medium ", None) == "normal"
    assert mapping.priority_in(None, None) is None
    for bad in (("urgent", None), (None, "Trivial")):
        with pytest.raises(ValueError):
            mapping.priority_in(*bad)
    assert mapping.priorities_of_severity("Minor") == {"normal", "low"}
    for tix in ("critical", "high", "normal", "low"):
        tmf = mapping.PRIORITY_TO_TMF[tix]
        assert mapping.priority_in(tmf, None) == tix
        assert tix in mapping.priorities_of_severity(mapping.SEVERITY_OF[tix])


@pytest.mark.parametrize(
    ("kind", "old", "new", "expected"),
    [
        ("created", None, "acknowledged", [mapping.CREATE]),
        ("offered", None, "acknowledged", [mapping.CREATE]),
        ("status", "acknowledged", "acknowledged", []),
        ("status", "acknowledged", "inProgress", [mapping.STATUS_CHANGE]),
        ("status", "inProgress", "resolved", [mapping.STATUS_CHANGE, mapping.RESOLVED]),
        ("status", "inProgress", "pending", [mapping.STATUS_CHANGE, mapping.INFORMATION_REQUIRED]),
        ("partner_status", "inProgress", "resolved", [mapping.STATUS_CHANGE, mapping.RESOLVED]),
        ("chain_status", "inProgress", "inProgress", [mapping.ATTRIBUTE_CHANGE]),
        ("comment", "inProgress", "inProgress", [mapping.ATTRIBUTE_CHANGE]),
        ("comment", None, "inProgress", [mapping.ATTRIBUTE_CHANGE]),
        ("cascade_held", "inProgress", "inProgress", []),
        ("sla_breach", "inProgress", "inProgress", [mapping.ATTRIBUTE_CHANGE]),
    ],
)
def test_timeline_events_become_tmf_events(
    kind: str, old: str | None, new: str, expected: list[str]
) -> None:
    assert mapping.event_types(kind, old, new) == expected


def test_comment_events_respect_visibility() -> None:
    internal, partner, public = ({"visibility": v} for v in ("internal", "partner", "public"))
    assert not mapping.event_visible("comment", internal, "admin")
    assert mapping.event_visible("comment", partner, "dispatcher")
    assert not mapping.event_visible("comment", partner, "contact")
    assert mapping.event_visible("comment", public, "contact")
    assert mapping.event_visible("status", None, "contact")


def test_hub_queries() -> None:
    assert mapping.parse_query(None) is None
    assert mapping.parse_query("  ") is None
    assert mapping.parse_query("eventType=TroubleTicketResolvedEvent,TroubleTicketCreateEvent") == {
        mapping.RESOLVED,
        mapping.CREATE,
    }
    assert mapping.parse_query("?eventType=TroubleTicketResolvedEvent") == {mapping.RESOLVED}
    assert mapping.parse_query(
        "eventType=TroubleTicketResolvedEvent&eventType=TroubleTicketCreateEvent"
    ) == {mapping.RESOLVED, mapping.CREATE}
    for bad in ("status=resolved", "eventType=Nope", "eventType=", "garbage"):
        with pytest.raises(ValueError):
            mapping.parse_query(bad)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/listener",
        "https://listener.example.com/tmf/v5/listener?x=1",
        "http://[::1]:9000/l",
    ],
)
def test_callbacks_that_are_accepted(url: str) -> None:
    assert mapping.check_callback(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://listener.example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://user:pw@listener.example.com/",
        "http:///nohost",
        "listener.example.com/x",
        "http://listener.example.com:99999/",
        "http://listener example.com/",
        "http://listener.example.com/#frag",
        "http://" + "a" * 2000 + ".com/",
    ],
)
def test_callbacks_that_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        mapping.check_callback(url)


def test_the_egress_allow_list() -> None:
    allowed = ("hooks.example.com", ".partner.net")
    mapping.check_callback("https://hooks.example.com/x", allowed)
    mapping.check_callback("https://a.partner.net/x", allowed)
    for url in ("https://evil.example.com/x", "http://127.0.0.1/x", "https://partner.net.evil/"):
        with pytest.raises(ValueError):
            mapping.check_callback(url, allowed)


def test_backoff_grows_to_a_cap_with_jitter() -> None:
    delays = [mapping.backoff_seconds(n, initial=1.0, cap=60.0, jitter=1.0) for n in range(1, 10)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and delays[-1] == 60.0
    assert mapping.backoff_seconds(3, initial=1.0, cap=60.0, jitter=0.0) == 2.0
    assert mapping.backoff_seconds(10**6, initial=1.0, cap=60.0, jitter=0.5) == 45.0


CHAIN = [
    {
        "id": "d1",
        "partner": "northwind",
        "partner_label": "Northwind Services",
        "level": 1,
        "offered_at": "2026-12-01T09:00:00.000Z",
        "delegations": [
            {
                "id": "d2",
                "partner": None,
                "partner_label": "subcontractor, level 2",
                "level": 2,
                "offered_at": "2026-12-01T09:10:00.000Z",
                "delegations": [],
            }
        ],
    }
]


def test_external_identifiers_list_the_latest_hand_off_first() -> None:
    ids = mapping.chain_identifiers(
        nodes=CHAIN,
        refs={"d1": "NORTHWIND-7"},
        upstream=("opco", "OPCO-3"),
        client_ids=[{"id": "INC-1", "owner": "CRM"}],
        chain_id="c-1",
    )
    assert [(e.owner, e.kind, e.id) for e in ids] == [
        ("subcontractor, level 2", "TixDelegation", "d2"),
        ("northwind", "TixTicket", "NORTHWIND-7"),
        ("opco", "TixTicket", "OPCO-3"),
        ("CRM", "", "INC-1"),
        ("tix", "TixChain", "c-1"),
    ]


def test_related_parties_name_only_the_disclosed_companies() -> None:
    parties = mapping.chain_parties(
        provider=("acme", "ACME Vendor"),
        nodes=CHAIN,
        upstream_account=None,
        organisation="Bank North",
        requester="Dana",
    )
    assert [(p.role, p.id, p.name) for p in parties] == [
        ("serviceProvider", "acme", "ACME Vendor"),
        ("customer", "Bank North", "Bank North"),
        ("reporter", "Dana", "Dana"),
        ("subcontractor level 1", "northwind", "Northwind Services"),
        ("subcontractor level 2", "subcontractor-level-2", "subcontractor, level 2"),
    ]


def test_a_rendered_ticket_and_its_events_validate_against_the_specification() -> None:
    facts = mapping.TicketFacts(
        number="ACME-1",
        title="Cooling failure",
        description="31 °C",
        priority="critical",
        category=None,
        status="resolved",
        created_at=AT,
        updated_at=AT,
        resolved_at=AT,
        status_changed_at=AT,
        status_reason="compressor replaced",
        requested_resolution_at=AT,
        external_ids=mapping.chain_identifiers(
            nodes=CHAIN, refs={}, upstream=None, client_ids=[], chain_id="c"
        ),
        parties=mapping.chain_parties(
            provider=("acme", "ACME"),
            nodes=CHAIN,
            upstream_account="opco",
            organisation=None,
            requester=None,
        ),
        notes=[mapping.NoteFacts(id="n1", author="Eve", date=AT, text="done")],
        expected_resolution_at=AT,
        sla_state="breached",
    )
    doc = mapping.render(facts, base_url="https://acme.example")
    assert schema_errors("TroubleTicket_RES", doc) == []
    assert doc["href"] == "https://acme.example/tmf-api/troubleTicket/v5/troubleTicket/ACME-1"
    assert (doc["priority"], doc["severity"], doc["ticketType"]) == (
        "Critical",
        "Critical",
        "incident",
    )
    assert doc["resolutionDate"] == doc["expectedResolutionDate"] == "2026-12-01T09:30:00.000Z"
    assert doc["troubleTicketCharacteristic"] == [
        {
            "@type": "StringCharacteristic",
            "name": "slaState",
            "valueType": "string",
            "value": "breached",
        }
    ]
    for event_type in mapping.EVENT_TYPES:
        event = mapping.event(
            event_id="e1",
            event_type=event_type,
            at=AT,
            ticket=doc,
            reporting=("acme", "ACME"),
            information_required=event_type == mapping.INFORMATION_REQUIRED,
        )
        assert schema_errors(event_type, event) == []
    assert mapping.select_fields(doc, "name, status,nope") == {
        "@type": "TroubleTicket",
        "id": "ACME-1",
        "href": doc["href"],
        "name": "Cooling failure",
        "status": "resolved",
    }
    assert mapping.select_fields(doc, "") == doc


def test_expected_resolution_is_our_own_deadline_else_the_latest_live_one_below() -> None:
    early, late = AT, AT.replace(hour=15)
    assert mapping.expected_resolution(early, [("in_progress", late)]) == early
    assert mapping.expected_resolution(None, [("accepted", early), ("offered", late)]) == late
    assert mapping.expected_resolution(None, [("accepted", early), ("recalled", late)]) == early
    assert mapping.expected_resolution(None, [("declined", late), ("accepted", None)]) is None
