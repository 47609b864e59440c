"""The webhook adapter's pure parts: HMAC signatures (stale, tampered, forged, malformed) and
the per-participant field and status mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.webhook import mapping, signing
from tests.unit.test_layering import FRAMEWORKS, ROOT, imported_modules

SECRET = b"s3cret-s3cret-s3cret"
NOW = 1_800_000_000


@pytest.mark.parametrize("module", ["adapters/webhook/signing.py", "adapters/webhook/mapping.py"])
def test_the_pure_modules_import_no_framework(module: str) -> None:
    names = imported_modules(ROOT / module)
    assert [n for n in names if n.split(".")[0] in FRAMEWORKS] == []


def test_while_a_secret_is_rolled_both_sign_and_either_is_accepted() -> None:
    old, new, body = b"old-secret-old-secret", b"new-secret-new-secret", b'{"a":1}'
    value = signing.header(new, NOW, body, also=[old])
    assert value == (
        f"t={NOW},v1={signing.digest(new, NOW, body)},v1={signing.digest(old, NOW, body)}"
    )
    # A receiver that knows only one of them accepts it (each side switches in its own time).
    assert signing.verify(old, value, body, now=NOW) == signing.digest(old, NOW, body)
    assert signing.verify(new, value, body, now=NOW) == signing.digest(new, NOW, body)
    # The adapter accepts a help desk still signing with the old secret, and the new one.
    for used in (old, new):
        signed = signing.header(used, NOW, body)
        assert signing.verify(new, signed, body, now=NOW, also=[old]) == signing.digest(
            used, NOW, body
        )
    # Once the overlap is over (no ``also``) the old secret is refused.
    with pytest.raises(signing.BadSignature, match="signature does not match"):
        signing.verify(new, signing.header(old, NOW, body), body, now=NOW)


def test_a_signature_covers_timestamp_and_body() -> None:
    body = b'{"action":"accept","ticket_id":"d1"}'
    value = signing.header(SECRET, NOW, body)
    assert value.startswith(f"t={NOW},v1=")
    assert signing.verify(SECRET, value, body, now=NOW + 10) == value.split("v1=")[1]
    # A second v1 (key rotation on the sender's side) is fine if one matches.
    assert signing.verify(SECRET, f"{value},v1=00ff", body, now=NOW)


@pytest.mark.parametrize(
    ("value", "body", "now", "reason"),
    [
        (None, b"{}", NOW, "missing signature"),
        ("", b"{}", NOW, "missing signature"),
        ("v1=abc", b"{}", NOW, "malformed signature"),
        (f"t={NOW}", b"{}", NOW, "malformed signature"),
        ("t=-5,v1=ab", b"{}", NOW, "malformed signature"),
        (signing.header(SECRET, NOW - 301, b"{}"), b"{}", NOW, "stale signature"),
        (signing.header(SECRET, NOW + 301, b"{}"), b"{}", NOW, "stale signature"),
        (signing.header(SECRET, NOW, b"{}"), b"{ }", NOW, "signature does not match"),
        (signing.header(b"other", NOW, b"{}"), b"{}", NOW, "signature does not match"),
        # The timestamp is signed: moving it forward breaks the signature.
        (
            signing.header(SECRET, NOW - 400, b"{}").replace(f"t={NOW - 400}", f"t={NOW}"),
            b"{}",
            NOW,
            "signature does not match",
        ),
        ("t=1," + "v1=a" * 400, b"{}", NOW, "missing signature"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    value: str | None, body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(signing.BadSignature) as info:
        signing.verify(SECRET, value, body, now=now)
    assert info.value.reason == reason


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=10**10))
def test_any_body_signed_now_verifies(body: bytes, timestamp: int) -> None:
    assert signing.verify(SECRET, signing.header(SECRET, timestamp, body), body, now=timestamp)


ZENDESK = {
    "fields": {"title": "subject", "ticket_id": "external_id"},
    "status_out": {"offered": "new", "in_progress": "open", "resolved": "solved"},
    "status_in": {"open": "in_progress", "hold": "on_hold", "solved": "resolved"},
    "priority_out": {"critical": "urgent"},
}


def test_a_ticket_goes_out_in_the_help_desks_names() -> None:
    m = mapping.ParticipantMapping.model_validate(ZENDESK)
    out = mapping.ticket_out(
        {"ticket_id": "d1", "title": "ATM down", "status": "offered", "priority": "critical"}, m
    )
    assert out == {
        "external_id": "d1",
        "subject": "ATM down",
        "status": "new",
        "priority": "urgent",
    }
    same = mapping.ticket_out({"status": "closed", "priority": "low"}, m)
    assert same == {"status": "closed", "priority": "low"}
    assert mapping.ticket_out({"title": "x"}, mapping.ParticipantMapping()) == {"title": "x"}


def test_statuses_come_in_through_the_mapping() -> None:
    m = mapping.ParticipantMapping.model_validate(ZENDESK)
    assert mapping.status_in("solved", m) == "resolved"
    assert mapping.status_in("hold", m) == "on_hold"
    assert mapping.status_in("in_progress", m) == "in_progress"  # Tix names work unmapped
    for bad in ("closed", "cancelled", "new", ""):
        with pytest.raises(ValueError):
            mapping.status_in(bad, m)


@pytest.mark.parametrize(
    "config",
    [
        {"fields": {"secret": "x"}},
        {"fields": {"title": "subject", "description": "subject"}},
        {"fields": {"title": "status"}},  # would overwrite the unmapped status
        {"fields": {"title": ""}},
        {"status_out": {"sleeping": "zzz"}},
        {"status_in": {"done": "closed"}},
        {"priority_out": {"urgent": "urgent"}},
        {"status_in": {"open": "x" * 101}},
        {"unknown": {}},
    ],
)
def test_bad_mappings_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        mapping.ParticipantMapping.model_validate(config)


def test_a_rolled_secret_signs_and_is_accepted_only_until_its_overlap_ends() -> None:
    from datetime import UTC, datetime, timedelta

    from adapters.webhook.models import WebhookParticipant
    from adapters.webhook.participants import previous_secrets

    until = datetime(2027, 1, 1, 12, tzinfo=UTC)
    participant = WebhookParticipant(
        account_id="desk-1",
        adapter_account="hooks",
        name="Desk",
        url="https://desk.example/hook",
        secret="new",
        previous_secret="old",
        previous_secret_until=until.replace(tzinfo=None),  # as SQLite hands it back
    )
    assert previous_secrets(participant, until - timedelta(seconds=1)) == (b"old",)
    assert previous_secrets(participant, until) == ()
    participant.previous_secret = None
    assert previous_secrets(participant, until - timedelta(days=1)) == ()
