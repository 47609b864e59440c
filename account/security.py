"""Passwords, user access tokens and API keys: pure helpers, no I/O, no web framework.

Passwords are hashed with scrypt (stdlib ``hashlib.scrypt``, n=2**14, r=8, p=1, a random
16-byte salt) and stored as ``scrypt$n$r$p$salt_b64$hash_b64``; verification recomputes with
the stored parameters and compares in constant time. ``dummy_verify`` burns the same work when
the user does not exist, so response time does not reveal which usernames are taken.

Access tokens are HS256 JWTs keyed with the node's secret (``NodeContext.secret``, ≥ 32 bytes),
scoped to one node by ``iss = "tix:<account_id>"`` and ``aud = "tix:<account_id>:api"``, typed
``at+jwt`` in the header so that no other JWT we issue (invitations, node-to-node tokens) passes
as one. Decoding follows the JWT rules of RELIABILITY.md: a single hard-coded algorithm, required
``exp/iat/iss/aud/sub``, a 30 s leeway, minimum key length enforced, ``crit`` refused, tokens over
4 KB refused before parsing. Every failure raises the same ``InvalidCredentials``.

API keys are ``tix_`` + 43 urlsafe characters (256 bits); only their SHA-256 is stored, so a
lookup is by hash. An unsalted fast hash is enough here because the key itself has full entropy.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
import threading
import time

import jwt

from account.errors import InvalidCredentials

__all__ = [
    "ACCESS_TOKEN_TYP",
    "API_KEY_PREFIX",
    "MAX_TOKEN_BYTES",
    "InvalidCredentials",
    "access_audience",
    "access_issuer",
    "api_key_hash",
    "create_access_token",
    "decode_access_token",
    "dummy_verify",
    "hash_password",
    "is_api_key",
    "new_api_key",
    "verify_password",
    "well_formed_api_key",
]

# -- passwords ---------------------------------------------------------------------------

_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_DKLEN = 32
_SALT_BYTES = 16
# 128 * r * n is 16 MiB for the defaults; leave room but refuse absurd stored parameters.
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_MAX_N = 2**20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# Each hash holds 128 * r * n bytes (16 MiB) while it runs: at most two at once, so a burst of
# logins (up to 16 requests run at once, account/http_limit.py) costs 32 MiB, not 256 MiB, of
# the node's memory (docs/performance.md, "Scale"). Two cores: no throughput is lost.
_SCRYPT_AT_ONCE = threading.BoundedSemaphore(2)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _SCRYPT_AT_ONCE:
        return hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=dklen
        )


def hash_password(password: str) -> str:
    """A storable scrypt hash of ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_DKLEN)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False (never an exception) for a malformed hash."""
    try:
        scheme, n_s, r_s, p_s, salt_b64, hash_b64 = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if scheme != "scrypt" or not (1 < n <= _MAX_N) or not (0 < r <= 32) or not (0 < p <= 16):
        return False
    if not expected:
        return False
    try:
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except ValueError:  # parameters OpenSSL refuses (n not a power of two, memory)
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    # Computed on first use rather than at import time.
    return hash_password(secrets.token_urlsafe(16))


def dummy_verify(password: str) -> None:
    """Spend the time of one real verification, for logins with an unknown username."""
    verify_password(password, _dummy_hash())


# -- access tokens -----------------------------------------------------------------------

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105  (a JWT header type, not a secret)
MAX_TOKEN_BYTES = 4096
_ALGORITHM = "HS256"
_LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]

# One codec with the minimum HMAC key length enforced both ways (pyjwt only warns by default).
_jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})


def access_issuer(account_id: str) -> str:
    return f"tix:{account_id}"


def access_audience(account_id: str) -> str:
    return f"tix:{account_id}:api"


def create_access_token(
    *, username: str, role: str, secret: bytes, account_id: str, minutes: int
) -> str:
    """A signed access token for ``username`` at node ``account_id``, valid ``minutes``."""
    now = int(time.time())
    claims = {
        "iss": access_issuer(account_id),
        "aud": access_audience(account_id),
        "sub": username,
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + minutes * 60,
        "jti": secrets.token_urlsafe(16),
    }
    return _jwt.encode(claims, secret, algorithm=_ALGORITHM, headers={"typ": ACCESS_TOKEN_TYP})


def decode_access_token(token: str, *, secret: bytes, account_id: str) -> str:
    """The username (``sub``) of a valid access token for this node; ``InvalidCredentials`` else.

    The ``role`` claim is informational: callers load the user and trust the database's role.
    """
    if not token or len(token) > MAX_TOKEN_BYTES or not token.isascii():
        raise InvalidCredentials()
    issuer = access_issuer(account_id)
    audience = access_audience(account_id)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != ACCESS_TOKEN_TYP or "crit" in header:
            raise InvalidCredentials()
        claims = _jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=_LEEWAY_SECONDS,
            options={
                "require": _REQUIRED_CLAIMS,
                "strict_aud": True,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidCredentials() from exc
    sub = claims.get("sub")
    # pyjwt already checked these; repeated so a library regression cannot widen what passes.
    if claims.get("iss") != issuer or claims.get("aud") != audience:
        raise InvalidCredentials()
    if not isinstance(sub, str) or not sub:
        raise InvalidCredentials()
    return sub


# -- API keys ----------------------------------------------------------------------------

API_KEY_PREFIX = "tix_"
_API_KEY_RE = re.compile(r"^tix_[A-Za-z0-9_-]{43}$")
_DISPLAY_PREFIX_CHARS = 12  # "tix_" + 8 characters: enough to tell keys apart in a list


def is_api_key(token: str) -> bool:
    """Whether ``token`` is shaped like one of our API keys (not whether it is valid)."""
    return token.startswith(API_KEY_PREFIX)


def api_key_hash(key: str) -> str:
    """The SHA-256 hex digest under which an API key is stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def well_formed_api_key(key: str) -> bool:
    """Whether ``key`` has the exact shape ``tix_<43 urlsafe characters>``."""
    return _API_KEY_RE.fullmatch(key) is not None


def new_api_key() -> tuple[str, str, str]:
    """A fresh key as ``(full key, display prefix, sha256 hex)``; only the last two are stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:_DISPLAY_PREFIX_CHARS], api_key_hash(key)
