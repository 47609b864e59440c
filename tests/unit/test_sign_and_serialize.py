"""``seal`` serialises each envelope member once (``signing.sign_and_serialize``): its bytes must
be exactly the canonical bytes of the signed envelope, for any body, including non-ASCII and
non-BMP text and member names whose UTF-16 order differs from their code-point order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exchange import signing
from exchange.canonical import canonical, canonical_members, join_members


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": 1,
        "id": "0b4c8a1e-52a4-4a8b-9a3c-2f6f4f1a9e10",
        "type": "ticket.comment",
        "from": "acme",
        "to": "globex",
        "link": "6c1d2c52-7a0b-4b59-8e4e-93a0a1f1c2d3",
        "subject": "5f0e6a3c-3b7e-4a53-8b9f-0e5e7a2c9d41",
        "seq": 7,
        "sent_at": "2026-12-01T20:00:00.000Z",
        "body": body,
    }


BODIES = [
    {},
    {"text": "plain"},
    {"text": 'Grüße, ЁЛКА, 漢字, emoji 😀, quote " backslash \\ tab \t nl \n ctl \u0001'},
    {"\U0001f600": 1, "\ufb01": 2, "a": [True, False, None, 0, -5, 2**53 - 1]},
    {"nested": {"z": {"y": [{"b": 1, "a": 2}]}, "a": []}, "\u20ac": "€"},
]


@pytest.mark.parametrize("body", BODIES)
def test_sign_and_serialize_is_the_canonical_signed_envelope(body: dict[str, Any]) -> None:
    key = signing.generate_key()
    envelope = _envelope(body)
    assert signing.sign_and_serialize(envelope, key) == canonical(
        signing.sign_envelope(envelope, key)
    )


@pytest.mark.parametrize("body", BODIES)
def test_joined_members_are_the_canonical_object(body: dict[str, Any]) -> None:
    value = _envelope(body) | body
    assert join_members(canonical_members(value)) == canonical(value)


def test_the_signature_verifies_over_the_signing_input() -> None:
    key = signing.generate_key()
    signed = json.loads(signing.sign_and_serialize(_envelope({"text": "x"}), key))
    signing.verify_envelope(signed, key.public_key())
