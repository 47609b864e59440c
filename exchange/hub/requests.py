"""Requests a node signs with its own key to talk to the hub (a short EdDSA JWT).

The token goes in ``Authorization: Bearer …`` and binds one request: ``iss`` (the account),
``aud`` ``tix:hub``, ``iat``/``exp`` (at most ``MAX_LIFETIME`` apart), a single-use ``jti``, the
method ``htm``, the path ``htu`` and ``bh``, base64url SHA-256 of the exact body bytes. The
header pins ``alg`` EdDSA and ``typ`` ``tix-hub+jwt`` and names the key in ``kid``. Checking the
signature needs the key, which the caller looks up (the pinned one, or for a first registration
the key in the body the token covers).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange.signing import b64url, kid_of

HUB_AUDIENCE = "tix:hub"
HUB_TYP = "tix-hub+jwt"
MAX_LIFETIME = 300
LEEWAY = 30
MAX_TOKEN = 4_000
_REQUIRED = ["iss", "aud", "iat", "exp", "jti", "htm", "htu", "bh"]


class BadRequestToken(ValueError):
    """The signed request token is missing, malformed, expired or does not verify."""


@dataclass(frozen=True)
class RequestClaims:
    account: str
    kid: str
    jti: str
    expires_at: int


def body_hash(body: bytes) -> str:
    return b64url(hashlib.sha256(body).digest())


def sign_request(
    *,
    key: Ed25519PrivateKey,
    account: str,
    method: str,
    path: str,
    body: bytes = b"",
    lifetime: int = 60,
    now: float | None = None,
) -> str:
    """A token for exactly this request (method, path without query, body)."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": account,
        "aud": HUB_AUDIENCE,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "htm": method.upper(),
        "htu": path,
        "bh": body_hash(body),
    }
    kid = kid_of(key.public_key())
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": HUB_TYP})


def unverified_issuer(token: str) -> tuple[str, str]:
    """``(iss, kid)`` before any check, to look up the key; ``BadRequestToken`` if unreadable."""
    if not token or len(token) > MAX_TOKEN:
        raise BadRequestToken("missing or oversized request token")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise BadRequestToken("not a hub request token") from exc
    if header.get("alg") != "EdDSA" or header.get("typ") != HUB_TYP or "crit" in header:
        raise BadRequestToken("not a hub request token")
    iss, kid = claims.get("iss"), header.get("kid")
    if not isinstance(iss, str) or not isinstance(kid, str):
        raise BadRequestToken("request token names no issuer or key")
    return iss, kid


def verify_request(
    token: str,
    *,
    key: Ed25519PublicKey,
    method: str,
    path: str,
    body: bytes,
    now: float | None = None,
) -> RequestClaims:
    """Check every claim of a request token against this request and key."""
    iss, kid = unverified_issuer(token)
    if kid != kid_of(key):
        raise BadRequestToken("request signed with another key than the account's")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["EdDSA"],
            audience=HUB_AUDIENCE,
            issuer=iss,
            options={"require": _REQUIRED},
            leeway=LEEWAY,
        )
    except jwt.ExpiredSignatureError as exc:
        raise BadRequestToken("request token expired") from exc
    except jwt.PyJWTError as exc:
        raise BadRequestToken("request token signature or claims invalid") from exc
    current = now if now is not None else time.time()
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > MAX_LIFETIME:
        raise BadRequestToken("request token lives too long")
    if iat > current + LEEWAY:
        raise BadRequestToken("request token issued in the future")
    if claims["htm"] != method.upper() or claims["htu"] != path:
        raise BadRequestToken("request token is for another request")
    if claims["bh"] != body_hash(body):
        raise BadRequestToken("request token does not cover this body")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 64:
        raise BadRequestToken("bad jti")
    return RequestClaims(account=iss, kid=kid, jti=jti, expires_at=exp)
