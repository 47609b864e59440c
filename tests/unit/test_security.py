"""Passwords, access tokens and API keys (account.security): round trips and hostile inputs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from account import security
from account.errors import AccountError, InvalidCredentials

SECRET = b"s" * 48
OTHER_SECRET = b"o" * 48
NODE = "acme"
ISS = "tix:acme"
AUD = "tix:acme:api"

# scrypt(n=2**14, r=8, p=1) of "correct horse battery staple" with salt bytes 0..15.
GOLDEN_HASH = (
    "scrypt$16384$8$1$AAECAwQFBgcICQoLDA0ODw==$11kKyiyYAc8G7rp3KmncMc44YlkdllIqxOa7pq0fMaU="
)
GOLDEN_PASSWORD = "correct horse battery staple"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def build_claims(**overrides: Any) -> dict[str, Any]:
    """Valid access-token claims for NODE; ``None`` as an override removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "role": "dispatcher",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(
    claims: dict[str, Any],
    *,
    key: Any = SECRET,
    alg: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    all_headers = {"typ": "at+jwt", **(headers or {})}
    return jwt.encode(claims, key, algorithm=alg, headers=all_headers)


def decode(token: str, *, secret: bytes = SECRET, account_id: str = NODE) -> str:
    return security.decode_access_token(token, secret=secret, account_id=account_id)


def assert_refused(token: str, *, secret: bytes = SECRET, account_id: str = NODE) -> None:
    with pytest.raises(InvalidCredentials):
        decode(token, secret=secret, account_id=account_id)


# -- access tokens: accepted ---------------------------------------------------------------


def test_access_token_round_trip_returns_the_username() -> None:
    token = security.create_access_token(
        username="alice", role="admin", secret=SECRET, account_id=NODE, minutes=5
    )
    assert decode(token) == "alice"


def test_access_token_carries_the_documented_claims_and_header() -> None:
    token = security.create_access_token(
        username="alice", role="admin", secret=SECRET, account_id=NODE, minutes=5
    )
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    assert claims["iss"] == ISS and claims["aud"] == AUD and claims["sub"] == "alice"
    assert claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


def test_each_access_token_has_its_own_jti() -> None:
    tokens = {
        security.create_access_token(
            username="alice", role="admin", secret=SECRET, account_id=NODE, minutes=5
        )
        for _ in range(3)
    }
    assert len(tokens) == 3


def test_expiry_within_the_leeway_is_still_accepted() -> None:
    now = int(time.time())
    assert decode(sign(build_claims(iat=now - 700, nbf=now - 700, exp=now - 10))) == "alice"


def test_token_without_nbf_or_jti_is_accepted() -> None:
    assert decode(sign(build_claims(nbf=None, jti=None))) == "alice"


def test_invalid_credentials_belongs_to_the_account_error_tree() -> None:
    assert issubclass(InvalidCredentials, AccountError)
    assert security.InvalidCredentials is InvalidCredentials


# -- access tokens: refused ----------------------------------------------------------------


def test_refuses_a_forged_signature() -> None:
    header, payload, signature = sign(build_claims()).split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    assert_refused(f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}")


def test_refuses_a_payload_changed_after_signing() -> None:
    header, _payload, signature = sign(build_claims()).split(".")
    forged = _b64url(json.dumps(build_claims(sub="root", role="admin")).encode())
    assert_refused(f"{header}.{forged}.{signature}")


def test_refuses_alg_none() -> None:
    header = _b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    payload = _b64url(json.dumps(build_claims()).encode())
    assert_refused(f"{header}.{payload}.")
    assert_refused(f"{header}.{payload}")


def test_refuses_hs256_signed_with_another_secret() -> None:
    assert_refused(sign(build_claims(), key=OTHER_SECRET))


def test_refuses_a_token_of_node_a_at_node_b() -> None:
    token = security.create_access_token(
        username="alice", role="admin", secret=SECRET, account_id="acme", minutes=5
    )
    assert_refused(token, account_id="globex")


def test_refuses_an_rs256_token() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(sign(build_claims(), key=key, alg="RS256"))


def test_refuses_an_eddsa_token() -> None:
    assert_refused(sign(build_claims(), key=Ed25519PrivateKey.generate(), alg="EdDSA"))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_refuses_other_hmac_algorithms_even_with_the_right_secret(alg: str) -> None:
    long_secret = b"s" * 64  # long enough for HS512, so signing does not warn
    assert_refused(sign(build_claims(), key=long_secret, alg=alg), secret=long_secret)


def test_refuses_an_expired_token() -> None:
    now = int(time.time())
    assert_refused(sign(build_claims(iat=now - 700, nbf=now - 700, exp=now - 120)))


def test_refuses_nbf_in_the_future_beyond_the_leeway() -> None:
    assert_refused(sign(build_claims(nbf=int(time.time()) + 120)))


def test_refuses_iat_in_the_future_beyond_the_leeway() -> None:
    assert_refused(sign(build_claims(iat=int(time.time()) + 120)))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
def test_refuses_a_token_missing_a_required_claim(claim: str) -> None:
    assert_refused(sign(build_claims(**{claim: None})))


@pytest.mark.parametrize(
    "aud", ["tix:globex:api", "tix:acme", "tix:acme:api:x", ["tix:acme:api", "tix:globex:api"]]
)
def test_refuses_a_wrong_audience(aud: Any) -> None:
    assert_refused(sign(build_claims(aud=aud)))


@pytest.mark.parametrize("iss", ["tix:globex", "tix:acm", "acme", "tix:acme:api", ""])
def test_refuses_a_wrong_issuer_including_substrings(iss: str) -> None:
    assert_refused(sign(build_claims(iss=iss)))


@pytest.mark.parametrize("typ", ["JWT", "inv+jwt", "AT+JWT", "application/jwt", None])
def test_refuses_a_token_of_another_type(typ: str | None) -> None:
    token = jwt.encode(build_claims(), SECRET, algorithm="HS256", headers={"typ": typ})
    assert_refused(token)


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["x-tix"]])
def test_refuses_a_crit_header(crit: list[str]) -> None:
    assert_refused(sign(build_claims(), headers={"crit": crit, "x-tix": 1}))


def test_refuses_a_token_over_4_kb() -> None:
    token = sign(build_claims(pad="x" * 4096))
    assert len(token) > security.MAX_TOKEN_BYTES
    assert_refused(token)


@pytest.mark.parametrize("sub", [42, "", ["alice"]])
def test_refuses_a_subject_that_is_not_a_non_empty_string(sub: Any) -> None:
    assert_refused(sign(build_claims(sub=sub)))


@pytest.mark.parametrize("secret", [b"", b"k", b"k" * 31])
def test_refuses_to_verify_with_a_short_or_empty_secret(secret: bytes) -> None:
    assert_refused(sign(build_claims()), secret=secret)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "é.é.é", "tix_notajwt"])
def test_refuses_garbage(token: str) -> None:
    assert_refused(token)


def test_kid_header_is_ignored_not_resolved() -> None:
    # We never look a key up by kid, so a hostile kid changes nothing: the HMAC still decides.
    assert_refused(sign(build_claims(), key=OTHER_SECRET, headers={"kid": "../../etc/passwd"}))


# -- passwords -----------------------------------------------------------------------------


def test_password_hash_has_the_documented_format() -> None:
    stored = security.hash_password("s3cret-passw0rd")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32


def test_password_round_trip_and_wrong_password() -> None:
    stored = security.hash_password("s3cret-passw0rd")
    assert security.verify_password("s3cret-passw0rd", stored)
    assert not security.verify_password("s3cret-passw0rD", stored)
    assert not security.verify_password("", stored)


def test_same_password_hashes_differently_each_time() -> None:
    assert security.hash_password("same-password") != security.hash_password("same-password")


def test_golden_password_hash_verifies() -> None:
    assert security.verify_password(GOLDEN_PASSWORD, GOLDEN_HASH)


def test_golden_password_hash_with_one_byte_changed_fails() -> None:
    head, digest = GOLDEN_HASH.rsplit("$", 1)
    raw = bytearray(base64.b64decode(digest))
    raw[0] ^= 0x01
    assert not security.verify_password(GOLDEN_PASSWORD, f"{head}${base64.b64encode(raw).decode()}")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$!!!!$AAAA",
        "scrypt$16384$8$1$AAAA$",
        "scrypt$1000$8$1$AAAA$AAAA",  # n not a power of two
        "scrypt$1099511627776$8$1$AAAA$AAAA",  # absurd cost
    ],
)
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert security.verify_password("anything", stored) is False


def test_dummy_verify_does_the_work_and_returns_nothing() -> None:
    assert security.dummy_verify("whatever") is None  # type: ignore[func-returns-value]


# -- API keys ------------------------------------------------------------------------------


def test_new_api_key_format_prefix_and_hash() -> None:
    key, prefix, key_hash = security.new_api_key()
    assert re.fullmatch(r"tix_[A-Za-z0-9_-]{43}", key)
    assert key.startswith(prefix) and prefix.startswith("tix_") and len(prefix) <= 16
    assert key_hash == hashlib.sha256(key.encode()).hexdigest() == security.api_key_hash(key)
    assert security.is_api_key(key) and security.well_formed_api_key(key)


def test_new_api_keys_are_unique() -> None:
    assert len({security.new_api_key()[0] for _ in range(20)}) == 20


@pytest.mark.parametrize("key", ["tix_", "tix_short", "tix_" + "a" * 44, "tix_" + "!" * 43])
def test_malformed_api_keys_are_recognised(key: str) -> None:
    assert not security.well_formed_api_key(key)


def test_at_most_two_password_hashes_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each scrypt holds 16 MiB: a burst of logins must not hold 16 of them (node memory)."""
    import threading

    stored = security.hash_password("correct horse")
    real = hashlib.scrypt
    lock = threading.Lock()
    entered = threading.Semaphore(0)
    release = threading.Event()
    running = {"now": 0, "most": 0}

    def counting(*args: Any, **kwargs: Any) -> bytes:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        entered.release()
        release.wait(30)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(hashlib, "scrypt", counting)
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(security.verify_password("correct horse", stored))
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    assert entered.acquire(timeout=30) and entered.acquire(timeout=30)  # two are hashing
    third = entered.acquire(timeout=0.5)  # the others wait for a slot
    release.set()
    for thread in threads:
        thread.join(30)
    assert not third
    assert running["most"] == 2
    assert results == [True] * 6
