"""Sealing and opening envelopes (exchange.envelopes): the stateless receiver checks.

Covers ARCHITECTURE §5 and RELIABILITY B08 (versions, unknown types, missing and extra fields),
B09 (size before parsing) and the clock-skew check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.canonical import canonical, parse_strict
from exchange.clock import instant
from exchange.envelopes import Opened, check_signature, check_skew, open_envelope, seal
from exchange.errors import RejectedMessage
from schemas import messages as m
from schemas.common import WireModel
from schemas.envelope import BODY_MODELS

KEY = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
NOW = datetime(2026, 11, 22, 8, 0, 0, 123_000, tzinfo=UTC)
LINK = "5a0b7c3d-2e1f-4a6b-8c9d-1e2f3a4b5c6d"
SUBJECT = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
MESSAGE_ID = "3f1c2a9e-7b4d-4e21-9c5a-0d8e6f7a1b2c"
AT = "2026-11-22T07:59:30.250Z"
UUID_A = "c0ffee00-1234-4abc-8def-0123456789ab"


def _chain_node(level: int, children: list[m.ChainNode]) -> m.ChainNode:
    return m.ChainNode(
        id=f"00000000-0000-4000-8000-00000000000{level}",
        partner=f"sub-{level}",
        partner_label=f"Subcontractor {level}",
        level=level,
        state="in_progress",
        status="in_progress",
        offered_at=AT,
        accepted_at=AT,
        due=m.Due(response_by=AT, resolve_by=None),
        sla_state="at_risk",
        delegations=children,
    )


SAMPLE_BODIES: dict[str, WireModel] = {
    "link.accept": m.LinkAccept(
        token="invitation-token",
        public_key="A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
        kid="56475aa75463474c",
        display_name="Northwind Facility GmbH",
    ),
    "link.rekey": m.LinkRekey(
        public_key="A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
        kid="56475aa75463474c",
        overlap_seconds=3_600,
    ),
    "link.suspend": m.LinkSuspend(suspended=True, reason="contract paused"),
    "delegation.offer": m.DelegationOffer(
        ticket=m.TicketSnapshot(
            ref="ACME-1042",
            title="Heating failure, building B",
            description="No heat on floors 2 to 4 since 06:00.",
            priority="high",
            category="hvac",
            service_object=m.ServiceObject(site="Plant 2", address="Hauptstr. 1", equipment="B-7"),
            requester=m.Contact(name="Jürgen Weiß", email="jw@acme.example"),
            created_at=AT,
        ),
        chain_id=UUID_A,
        depth=1,
        note="Please confirm within the hour.",
        due=m.Due(response_by=AT, resolve_by=AT),
    ),
    "delegation.accept": m.DelegationAccept(ref="NW-77", accepted_at=AT),
    "delegation.decline": m.DelegationDecline(reason="no capacity", declined_at=AT),
    "delegation.recall": m.DelegationRecall(reason="solved in house", recalled_at=AT),
    "ticket.update": m.TicketUpdate(
        title="Heating failure, building B and C",
        priority="critical",
        due=m.Due(resolve_by=AT),
        addendum="Building C is affected too.",
    ),
    "ticket.status": m.TicketStatus(
        ref="NW-77",
        status="in_progress",
        changed_at=AT,
        assignee_role="technician",
        note="Technician on site.",
        subtree=[_chain_node(2, [_chain_node(3, [])])],
    ),
    "ticket.comment": m.TicketComment(
        comment_id=UUID_A,
        author="Jürgen Weiß",
        body="Techniker ist unterwegs \U0001f527",
        visibility="public",
        created_at=AT,
    ),
    "ticket.attachment": m.TicketAttachment(
        attachment_id=UUID_A,
        filename="photo.jpg",
        content_type="image/jpeg",
        size=3,
        sha256="a" * 64,
        content_b64="AAAA",
    ),
    "sla.event": m.SlaEvent(
        event_id=UUID_A,
        kind="breach",
        clock="resolution",
        level=2,
        partner="sub-2",
        due_at=AT,
        at=AT,
    ),
    "resolution.confirm": m.ResolutionConfirm(note="Thanks.", confirmed_at=AT),
    "resolution.rework": m.ResolutionRework(reason="Still cold on floor 3.", requested_at=AT),
    "rating": m.Rating(score=5, comment="Fast and clean."),
}


def seal_sample(message_type: str = "ticket.comment", **overrides: Any) -> bytes:
    """The canonical bytes of a valid signed envelope carrying the sample body of a type."""
    arguments: dict[str, Any] = {
        "key": KEY,
        "sender": "northwind",
        "to": "acme",
        "message_type": message_type,
        "link": LINK,
        "subject": SUBJECT,
        "seq": 7,
        "body": SAMPLE_BODIES[message_type],
        "sent_at": NOW,
        "message_id": MESSAGE_ID,
    }
    return seal(**(arguments | overrides))[1]


def sample_dict(message_type: str = "ticket.comment") -> dict[str, Any]:
    value: dict[str, Any] = parse_strict(seal_sample(message_type))
    return value


def rejection_of(data: bytes) -> str:
    with pytest.raises(RejectedMessage) as caught:
        open_envelope(data)
    return caught.value.reason


def opened_sent_at(moment: datetime) -> Opened:
    return open_envelope(seal_sample(sent_at=moment))


# --- seal and open ---------------------------------------------------------------------------


def test_there_is_a_sample_body_for_every_message_type() -> None:
    assert set(SAMPLE_BODIES) == set(BODY_MODELS)
    for message_type, body in SAMPLE_BODIES.items():
        assert type(body) is BODY_MODELS[message_type]


@pytest.mark.parametrize("message_type", sorted(BODY_MODELS))
def test_seal_then_open_round_trips_every_message_type(message_type: str) -> None:
    data = seal_sample(message_type)

    opened = open_envelope(data)

    check_signature(opened, KEY.public_key())
    assert opened.body == SAMPLE_BODIES[message_type]
    assert opened.sender == "northwind"
    assert (opened.envelope.type, opened.envelope.to, opened.envelope.seq) == (
        message_type,
        "acme",
        7,
    )
    assert (opened.envelope.link, opened.envelope.subject, opened.envelope.id) == (
        LINK,
        SUBJECT,
        MESSAGE_ID,
    )
    assert opened.envelope.sent_at == "2026-11-22T08:00:00.123Z"
    assert canonical(opened.raw) == data


def test_seal_returns_the_message_id_and_canonical_bytes() -> None:
    message_id, data = seal(
        key=KEY,
        sender="northwind",
        to="acme",
        message_type="rating",
        link=LINK,
        subject=SUBJECT,
        seq=1,
        body=SAMPLE_BODIES["rating"],
    )

    value = parse_strict(data)
    assert value["id"] == message_id
    assert canonical(value) == data
    assert set(value) == {
        "v",
        "id",
        "type",
        "from",
        "to",
        "link",
        "subject",
        "seq",
        "sent_at",
        "body",
        "kid",
        "sig",
    }


def test_seal_gives_each_message_its_own_id() -> None:
    first = parse_strict(seal_sample(message_id=None))["id"]
    second = parse_strict(seal_sample(message_id=None))["id"]

    assert first != second


def test_seal_refuses_a_body_of_the_wrong_model_for_the_type() -> None:
    with pytest.raises(TypeError):
        seal_sample("ticket.comment", body=SAMPLE_BODIES["rating"])


def test_seal_refuses_an_envelope_over_the_size_cap() -> None:
    big = m.TicketAttachment(
        attachment_id=UUID_A,
        filename="big.bin",
        content_type="application/octet-stream",
        size=1,
        sha256="a" * 64,
        content_b64="\U0001f600" * 100_000,  # 100 000 characters, 400 000 bytes
    )

    with pytest.raises(ValueError):
        seal_sample("ticket.attachment", body=big)


# --- open_envelope rejections ----------------------------------------------------------------


def reencoded(change: Callable[[dict[str, Any]], None]) -> bytes:
    value = sample_dict()
    change(value)
    return canonical(value)


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(envelope: dict[str, Any]) -> None:
        envelope[field] = value

    return change


def _drop(field: str) -> Callable[[dict[str, Any]], None]:
    def change(envelope: dict[str, Any]) -> None:
        del envelope[field]

    return change


def _set_body(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(envelope: dict[str, Any]) -> None:
        envelope["body"][field] = value

    return change


@pytest.mark.parametrize("version", [2, 0, "1", None, [1]])
def test_rejects_an_unsupported_version(version: Any) -> None:
    assert rejection_of(reencoded(_set("v", version))) == "unsupported_version"


def test_rejects_an_envelope_without_a_version() -> None:
    assert rejection_of(reencoded(_drop("v"))) == "unsupported_version"


@pytest.mark.parametrize("message_type", ["ticket.delete", "Ticket.Comment", "", 5, None])
def test_rejects_an_unknown_type(message_type: Any) -> None:
    assert rejection_of(reencoded(_set("type", message_type))) == "unknown_type"


def test_rejects_an_envelope_without_a_type() -> None:
    assert rejection_of(reencoded(_drop("type"))) == "unknown_type"


@pytest.mark.parametrize(
    "field", ["id", "from", "to", "link", "subject", "seq", "sent_at", "body", "kid", "sig"]
)
def test_rejects_an_envelope_missing_a_required_field(field: str) -> None:
    assert rejection_of(reencoded(_drop(field))) == "schema"


def test_rejects_a_body_missing_a_required_field() -> None:
    def drop_created_at(envelope: dict[str, Any]) -> None:
        del envelope["body"]["created_at"]

    assert rejection_of(reencoded(drop_created_at)) == "schema"


@pytest.mark.parametrize("field", ["hops", "ticket_id", "unsigned", "From"])
def test_rejects_an_extra_top_level_field(field: str) -> None:
    assert rejection_of(reencoded(_set(field, "x"))) == "schema"


def test_rejects_an_extra_body_field() -> None:
    assert rejection_of(reencoded(_set_body("route_to", "globex"))) == "schema"


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize(
    "account", ["ACME", "a", "-acme", "acme_corp", "acme.example", "a" * 64, "", 7]
)
def test_rejects_a_bad_account_id(field: str, account: Any) -> None:
    assert rejection_of(reencoded(_set(field, account))) == "schema"


@pytest.mark.parametrize(
    "moment",
    [
        "2026-11-22T08:00:00Z",
        "2026-11-22T08:00:00.000+00:00",
        "2026-11-22 08:00:00.000Z",
        "2026-11-22T08:00:00.0000Z",
        "2026-11-22T08:00:00.000z",
        "22.11.2026 08:00",
        1_795_334_400,
    ],
)
def test_rejects_a_bad_instant_format(moment: Any) -> None:
    assert rejection_of(reencoded(_set("sent_at", moment))) == "schema"
    assert rejection_of(reencoded(_set_body("created_at", moment))) == "schema"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "3F1C2A9E-7B4D-4E21-9C5A-0D8E6F7A1B2C"),
        ("link", "not-a-uuid"),
        ("seq", 0),
        ("seq", -1),
        ("seq", "7"),
        ("seq", True),
        ("kid", "56475AA75463474C"),
        ("kid", "56475aa7546347"),
        ("sig", "A" * 85),
        ("sig", "A" * 85 + "="),
        ("body", []),
    ],
)
def test_rejects_a_field_of_the_wrong_shape(field: str, value: Any) -> None:
    assert rejection_of(reencoded(_set(field, value))) == "schema"


@pytest.mark.parametrize(
    ("message_type", "field", "value"),
    [
        ("rating", "score", 6),
        ("rating", "score", 0),
        ("rating", "score", True),
        ("resolution.rework", "reason", ""),
        ("ticket.comment", "visibility", "everyone"),
        ("delegation.offer", "depth", 33),
    ],
)
def test_rejects_a_body_value_its_model_refuses(message_type: str, field: str, value: Any) -> None:
    envelope = sample_dict(message_type)
    envelope["body"][field] = value

    assert rejection_of(canonical(envelope)) == "schema"


def test_rejects_a_body_of_another_message_type() -> None:
    envelope = sample_dict("ticket.comment")
    envelope["body"] = sample_dict("rating")["body"]

    assert rejection_of(canonical(envelope)) == "schema"


@pytest.mark.parametrize("data", [b"[]", b'"envelope"', b"1", b"null", b"true", b"[{}]"])
def test_rejects_json_that_is_not_an_object_as_malformed(data: bytes) -> None:
    assert rejection_of(data) == "malformed"


def test_rejects_strict_json_violations_as_malformed() -> None:
    data = seal_sample()

    assert rejection_of(data[:-1]) == "malformed"
    assert rejection_of(data[:-1] + b',"v":1}') == "malformed"  # duplicate key


def test_rejects_an_envelope_over_the_size_cap_as_too_large() -> None:
    data = seal_sample()

    with pytest.raises(RejectedMessage) as caught:
        open_envelope(data, max_bytes=len(data) - 1)

    assert caught.value.reason == "too_large"
    assert open_envelope(data, max_bytes=len(data)).sender == "northwind"


# --- clock skew ------------------------------------------------------------------------------


def test_check_skew_refuses_sent_at_10_minutes_in_the_future() -> None:
    opened = opened_sent_at(NOW + timedelta(minutes=10))

    with pytest.raises(RejectedMessage) as caught:
        check_skew(opened, max_skew=timedelta(minutes=5), now=NOW)

    assert caught.value.reason == "future_sent_at"


def test_check_skew_accepts_sent_at_1_minute_in_the_future() -> None:
    check_skew(opened_sent_at(NOW + timedelta(minutes=1)), max_skew=timedelta(minutes=5), now=NOW)


def test_check_skew_accepts_sent_at_exactly_at_the_allowed_skew() -> None:
    check_skew(opened_sent_at(NOW + timedelta(minutes=5)), max_skew=timedelta(minutes=5), now=NOW)


def test_check_skew_accepts_sent_at_in_the_past() -> None:
    check_skew(opened_sent_at(NOW - timedelta(days=3)), max_skew=timedelta(minutes=5), now=NOW)


def test_sent_at_travels_as_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 22, 9, 0, 0, 123_456, tzinfo=UTC)

    assert parse_strict(seal_sample(sent_at=moment))["sent_at"] == instant(moment)
    assert instant(moment) == "2026-11-22T09:00:00.123Z"


def _rating_envelope() -> dict[str, Any]:
    data = seal(
        key=KEY,
        sender="northwind",
        to="acme",
        message_type="rating",
        link="5a0b7c3d-2e1f-4a6b-8c9d-1e2f3a4b5c6d",
        subject="9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
        seq=7,
        body=m.Rating(score=5),
    )[1]
    value: dict[str, Any] = parse_strict(data)
    return value


def test_rejects_version_true_as_unsupported_version() -> None:
    with pytest.raises(RejectedMessage) as caught:
        open_envelope(canonical(_rating_envelope() | {"v": True}))
    assert caught.value.reason == "unsupported_version"


def test_rejects_an_envelope_spelling_from_as_from_underscore() -> None:
    envelope = _rating_envelope()
    envelope["from_"] = envelope.pop("from")
    with pytest.raises(RejectedMessage) as caught:
        open_envelope(canonical(envelope))
    assert caught.value.reason == "schema"


def test_rejects_integers_outside_the_interoperable_range_as_malformed() -> None:
    for big in (2**53, -(2**53)):
        with pytest.raises(RejectedMessage) as caught:
            parse_strict(b'{"seq": ' + str(big).encode() + b"}")
        assert caught.value.reason == "malformed"
    assert parse_strict(b'{"seq": 9007199254740991}') == {"seq": 2**53 - 1}
