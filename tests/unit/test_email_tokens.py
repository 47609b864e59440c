"""Reply tokens (adapters.email.tokens): golden vector, binding to the delegation, tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from adapters.email import tokens

SECRET = b"tix-corpus-secret-not-for-production"
DELEGATION = "3f2b8c1e-6d4a-4e59-9a7b-1c2d3e4f5a6b"
OTHER_DELEGATION = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
GOLDEN_TOKEN = "cmfvcymx3mz2dqrjg4rxydgk"  # fixed: changing the construction breaks live addresses


def test_token_matches_the_golden_vector() -> None:
    assert tokens.token_for(DELEGATION, SECRET) == GOLDEN_TOKEN


def test_token_is_truncated_hmac_sha256_of_the_labelled_delegation_id() -> None:
    mac = hmac.new(SECRET, b"tix-reply-v1:" + DELEGATION.encode(), hashlib.sha256).digest()
    assert GOLDEN_TOKEN == base64.b32encode(mac[:15]).decode().lower()
    assert len(GOLDEN_TOKEN) * 5 >= 80  # bits carried by the token


def test_reply_address_round_trips_to_a_verified_token() -> None:
    address = tokens.make_reply_address("tix", "Mail.Tix.Example", DELEGATION, SECRET)
    assert address == f"tix+{GOLDEN_TOKEN}@mail.tix.example"
    token = tokens.parse_token(address, domain="mail.tix.example")
    assert token == GOLDEN_TOKEN
    assert tokens.verify(token, DELEGATION, SECRET)


def test_token_of_one_delegation_fails_for_another() -> None:
    other = tokens.token_for(OTHER_DELEGATION, SECRET)
    assert other != GOLDEN_TOKEN
    assert not tokens.verify(other, DELEGATION, SECRET)
    assert not tokens.verify(GOLDEN_TOKEN, OTHER_DELEGATION, SECRET)


@pytest.mark.parametrize("position", range(len(GOLDEN_TOKEN)))
def test_token_with_one_character_changed_fails(position: int) -> None:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    changed = alphabet[(alphabet.index(GOLDEN_TOKEN[position]) + 1) % len(alphabet)]
    mutated = GOLDEN_TOKEN[:position] + changed + GOLDEN_TOKEN[position + 1 :]
    assert not tokens.verify(mutated, DELEGATION, SECRET)


def test_token_under_another_secret_fails() -> None:
    assert not tokens.verify(GOLDEN_TOKEN, DELEGATION, b"another-secret-of-enough-bytes")


def test_previous_secret_still_verifies_after_rotation() -> None:
    new_secret = b"rotated-secret-0123456789abcdef"
    assert not tokens.verify(GOLDEN_TOKEN, DELEGATION, new_secret)
    assert tokens.verify(GOLDEN_TOKEN, DELEGATION, new_secret, previous_secrets=[SECRET])


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        tokens.token_for(DELEGATION, b"short")


def test_verify_is_case_insensitive_and_never_raises_on_junk() -> None:
    assert tokens.verify(GOLDEN_TOKEN.upper(), DELEGATION, SECRET)
    for junk in ("", "é" * 24, " " * 24, GOLDEN_TOKEN + "a", GOLDEN_TOKEN[:-1]):
        assert not tokens.verify(junk, DELEGATION, SECRET)


@pytest.mark.parametrize(
    ("address", "domain", "expected"),
    [
        (f"tix+{GOLDEN_TOKEN}@mail.tix.example", None, GOLDEN_TOKEN),
        (f"TIX+{GOLDEN_TOKEN.upper()}@MAIL.TIX.EXAMPLE", "mail.tix.example", GOLDEN_TOKEN),
        (f"<tix+{GOLDEN_TOKEN}@mail.tix.example>", None, GOLDEN_TOKEN),
        (f"tix+{GOLDEN_TOKEN}@elsewhere.example", "mail.tix.example", None),
        ("tix@mail.tix.example", None, None),
        ("tix+short@mail.tix.example", None, None),
        ("tix+" + "0" * 24 + "@mail.tix.example", None, None),  # 0, 1, 8, 9 are not base32
        (f"tix+{GOLDEN_TOKEN}", None, None),
        (f"+{GOLDEN_TOKEN}@mail.tix.example", None, None),
        ("", None, None),
    ],
)
def test_parse_token(address: str, domain: str | None, expected: str | None) -> None:
    assert tokens.parse_token(address, domain=domain) == expected


def test_message_id_carries_the_token() -> None:
    message_id = tokens.make_message_id("mail.tix.example", DELEGATION, SECRET, "offer-1")
    assert message_id == f"<tix.{GOLDEN_TOKEN}.offer-1@mail.tix.example>"
    assert tokens.token_from_message_id(message_id) == GOLDEN_TOKEN
    assert tokens.token_from_message_id(message_id[1:-1], domain="mail.tix.example")
    assert tokens.token_from_message_id(message_id, domain="other.example") is None
    assert tokens.token_from_message_id("<CAJx5Kf3qL9r0@mail.gmail.com>") is None


@pytest.mark.parametrize(
    ("local", "domain"),
    [("", "mail.tix.example"), ("a b", "mail.tix.example"), ("tix", ""), ("tix", "a@b")],
)
def test_reply_address_refuses_unusable_parts(local: str, domain: str) -> None:
    with pytest.raises(ValueError, match="unusable"):
        tokens.make_reply_address(local, domain, DELEGATION, SECRET)


def test_message_id_refuses_unusable_unique_part() -> None:
    with pytest.raises(ValueError, match="unique part"):
        tokens.make_message_id("mail.tix.example", DELEGATION, SECRET, "a@b")
