"""Envelope signatures, key ids and key files (exchange.signing): golden vector and tampering.

The golden vector in tests/vectors/envelope_v1.json was generated once from a fixed seed; Ed25519
is deterministic, so recomputing it must give the committed bytes. Other implementations of the
protocol can check themselves against the same file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import signing
from exchange.canonical import canonical
from exchange.envelopes import check_signature, open_envelope
from exchange.errors import KeyFileError, RejectedMessage

VECTOR_FILE = Path(__file__).resolve().parents[1] / "vectors" / "envelope_v1.json"


@cache
def _golden_public() -> Ed25519PublicKey:
    return golden_key().public_key()


@cache
def _vector() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
    return loaded


def golden() -> dict[str, Any]:
    """A fresh copy of the committed golden vector."""
    copied: dict[str, Any] = json.loads(json.dumps(_vector()))
    return copied


def golden_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(golden()["seed_hex"]))


def golden_signed() -> dict[str, Any]:
    """The golden envelope with the committed kid and sig."""
    vector = golden()
    return vector["unsigned_envelope"] | {"kid": vector["kid"], "sig": vector["sig"]}


def golden_wire() -> bytes:
    return canonical(golden_signed())


def rejection_of(envelope: dict[str, Any]) -> str:
    with pytest.raises(RejectedMessage) as caught:
        signing.verify_envelope(envelope, golden_key().public_key())
    return caught.value.reason


def accepted(data: bytes) -> bool:
    """Whether bytes pass the stateless checks and verify with the golden key."""
    try:
        check_signature(open_envelope(data), _golden_public())
    except RejectedMessage:
        return False
    return True


# --- golden vector ---------------------------------------------------------------------------


def test_golden_seed_gives_the_committed_public_key_and_kid() -> None:
    vector = golden()
    key = golden_key()

    assert vector["seed_hex"] == bytes(range(32)).hex()
    assert signing.public_key_b64(key) == vector["public_key"]
    assert signing.kid_of(key.public_key()) == vector["kid"]


def test_golden_signing_input_is_the_canonical_envelope_with_kid_and_without_sig() -> None:
    vector = golden()
    expected = vector["signing_input"].encode("utf-8")

    assert signing.signing_input(golden_signed()) == expected
    assert canonical(vector["unsigned_envelope"] | {"kid": vector["kid"]}) == expected


def test_signing_the_golden_envelope_gives_the_committed_signature() -> None:
    vector = golden()

    signed = signing.sign_envelope(vector["unsigned_envelope"], golden_key())

    assert signed == golden_signed()
    assert signed["sig"] == vector["sig"]


def test_committed_signature_verifies_over_the_committed_bytes_with_plain_ed25519() -> None:
    vector = golden()
    public = signing.public_key_from_b64(vector["public_key"])

    public.verify(
        base64.urlsafe_b64decode(vector["sig"] + "=="), vector["signing_input"].encode("utf-8")
    )


def test_golden_signed_envelope_verifies() -> None:
    vector = golden()

    signing.verify_envelope(golden_signed(), signing.public_key_from_b64(vector["public_key"]))
    assert accepted(golden_wire())


# --- round trip ------------------------------------------------------------------------------


def test_sign_then_verify_round_trip_with_a_fresh_key() -> None:
    key = signing.generate_key()

    signed = signing.sign_envelope(golden()["unsigned_envelope"], key)

    signing.verify_envelope(signed, key.public_key())
    assert signed["kid"] == signing.kid_of(key.public_key())


def test_signing_does_not_change_the_envelope_it_is_given() -> None:
    unsigned = golden()["unsigned_envelope"]
    before = json.loads(json.dumps(unsigned))

    signing.sign_envelope(unsigned, golden_key())

    assert unsigned == before


def test_signing_replaces_a_stale_kid_and_sig() -> None:
    stale = golden()["unsigned_envelope"] | {"kid": "0000000000000000", "sig": "stale"}

    assert signing.sign_envelope(stale, golden_key()) == golden_signed()


def test_a_signature_does_not_verify_with_another_key() -> None:
    with pytest.raises(RejectedMessage) as caught:
        signing.verify_envelope(golden_signed(), signing.generate_key().public_key())

    assert caught.value.reason == "invalid_signature"


def test_member_order_does_not_change_the_signature() -> None:
    reordered = dict(reversed(list(golden_signed().items())))

    signing.verify_envelope(reordered, golden_key().public_key())


def test_non_canonical_whitespace_and_escapes_on_the_wire_still_verify() -> None:
    # The signature covers the canonical form, not the bytes that travelled (RELIABILITY B01).
    pretty = json.dumps(golden_signed(), indent=2, ensure_ascii=True).encode("ascii")

    assert pretty != golden_wire()
    assert accepted(pretty)


# --- tampering (RELIABILITY B01, B02) ---------------------------------------------------------


@pytest.mark.parametrize("bit", range(8))
def test_flipping_any_bit_of_any_byte_of_the_signed_envelope_never_verifies(bit: int) -> None:
    wire = golden_wire()
    for position in range(len(wire)):
        mutated = bytearray(wire)
        mutated[position] ^= 1 << bit
        assert not accepted(bytes(mutated)), f"byte {position} with bit {bit} flipped verified"


@settings(database=None)
@given(st.data())
def test_replacing_any_byte_of_the_signed_envelope_never_verifies(data: st.DataObject) -> None:
    wire = golden_wire()
    position = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    replacement = data.draw(st.integers(min_value=1, max_value=255))
    mutated = bytearray(wire)
    mutated[position] = (mutated[position] + replacement) % 256

    assert not accepted(bytes(mutated))


def _set_body(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(envelope: dict[str, Any]) -> None:
        envelope["body"][field] = value

    return change


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(envelope: dict[str, Any]) -> None:
        envelope[field] = value

    return change


@pytest.mark.parametrize(
    "change",
    [
        _set("to", "globex"),
        _set("from", "globex"),
        _set("seq", 8),
        _set("link", "00000000-0000-4000-8000-000000000000"),
        _set("subject", "00000000-0000-4000-8000-000000000000"),
        _set("type", "ticket.status"),
        _set("id", "00000000-0000-4000-8000-000000000000"),
        _set("sent_at", "2026-11-22T08:00:00.001Z"),
        _set("v", 2),
        _set("kid", "0000000000000000"),
        _set("body", {}),
        _set_body("body", "Alles in Ordnung"),
        _set_body("visibility", "public"),
        _set_body("extra", "steer me"),
        _set("hops", 0),
        _set("ticket_id", "ACME-1"),
    ],
    ids=[
        "to",
        "from",
        "seq",
        "link",
        "subject",
        "type",
        "id",
        "sent_at",
        "v",
        "kid",
        "whole-body",
        "body-text",
        "body-visibility",
        "body-extra-field",
        "unsigned-top-level-hops",
        "unsigned-top-level-ticket-id",
    ],
)
def test_changing_or_adding_a_field_after_signing_fails_verification(
    change: Callable[[dict[str, Any]], None],
) -> None:
    envelope = golden_signed()
    change(envelope)

    assert rejection_of(envelope) == "invalid_signature"


def _standard_base64(sig: str) -> str:
    return sig.replace("-", "+").replace("_", "/")


def _other_last_character(sig: str) -> str:
    """The same 64 bytes with non-zero unused bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]


@pytest.mark.parametrize(
    "reencode",
    [
        lambda sig: sig + "==",
        _standard_base64,
        lambda sig: base64.b64encode(signing.b64url_decode(sig)).decode(),
        lambda sig: sig + "\n",
        lambda sig: " " + sig,
        _other_last_character,
        lambda sig: signing.b64url_decode(sig).hex(),
    ],
    ids=[
        "padded",
        "standard-alphabet",
        "standard-padded",
        "newline",
        "space",
        "unused-bits",
        "hex",
    ],
)
def test_a_re_encoded_signature_fails(reencode: Callable[[str], str]) -> None:
    sig = golden()["sig"]
    reencoded = reencode(sig)

    assert reencoded != sig
    assert rejection_of(golden_signed() | {"sig": reencoded}) == "invalid_signature"


def test_the_golden_signature_really_differs_in_the_standard_alphabet() -> None:
    # Keeps the standard-alphabet case above meaningful.
    assert _standard_base64(golden()["sig"]) != golden()["sig"]


def test_the_unused_bits_case_really_decodes_to_the_same_bytes() -> None:
    sig = golden()["sig"]

    assert base64.urlsafe_b64decode(_other_last_character(sig) + "==") == (
        base64.urlsafe_b64decode(sig + "==")
    )


@pytest.mark.parametrize("keep", [85, 84, 82, 43, 1, 0])
def test_a_truncated_signature_fails(keep: int) -> None:
    assert rejection_of(golden_signed() | {"sig": golden()["sig"][:keep]}) == "invalid_signature"


def test_a_signature_with_extra_bytes_fails() -> None:
    longer = signing.b64url(signing.b64url_decode(golden()["sig"]) + b"\x00")

    assert rejection_of(golden_signed() | {"sig": longer}) == "invalid_signature"


@pytest.mark.parametrize("sig", [None, 123, ["x"], {"sig": "x"}])
def test_a_signature_that_is_not_a_string_fails(sig: Any) -> None:
    assert rejection_of(golden_signed() | {"sig": sig}) == "invalid_signature"


def test_a_missing_signature_fails() -> None:
    unsigned = {k: v for k, v in golden_signed().items() if k != "sig"}

    assert rejection_of(unsigned) == "invalid_signature"


# --- key ids and key encodings ---------------------------------------------------------------


def test_kid_is_the_first_16_hex_chars_of_sha256_of_the_raw_public_key() -> None:
    for key in (golden_key(), signing.generate_key()):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        expected = hashlib.sha256(raw).hexdigest()[:16]

        assert signing.kid_of(key.public_key()) == expected
        assert signing.kid_of(raw) == expected


def test_public_key_b64_round_trips() -> None:
    key = signing.generate_key()
    text = signing.public_key_b64(key)

    assert len(text) == 43
    assert signing.public_key_b64(signing.public_key_from_b64(text)) == text
    assert signing.public_key_b64(key.public_key()) == text


@pytest.mark.parametrize(
    "text",
    ["", "A" * 42, "A" * 44, "A" * 43 + "=", "+" * 43, signing.b64url(b"\x01" * 31)],
)
def test_public_key_from_b64_refuses_anything_but_32_base64url_bytes(text: str) -> None:
    with pytest.raises(ValueError):
        signing.public_key_from_b64(text)


# --- key files (the only I/O here, in tmp_path) -----------------------------------------------


def test_key_file_is_written_with_mode_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "node.pem"

    signing.write_key_file(path, golden_key())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.public_key_b64(signing.load_key_file(path)) == golden()["public_key"]


def test_write_key_file_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "node.pem"
    path.write_bytes(b"")

    with pytest.raises(FileExistsError):
        signing.write_key_file(path, golden_key())


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666])
def test_load_key_file_refuses_a_file_others_may_use(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.pem"
    signing.write_key_file(path, golden_key())
    path.chmod(mode)

    with pytest.raises(KeyFileError):
        signing.load_key_file(path)


def test_load_key_file_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        signing.load_key_file(tmp_path / "absent.pem")


def test_private_key_from_pem_refuses_a_key_that_is_not_ed25519() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(KeyFileError):
        signing.private_key_from_pem(pem)
