"""Node-to-node tokens: one short JWT per request, signed with the requesting account's key.

A node asking a partner for content signs a JWT (EdDSA, header ``typ: tix-node+jwt`` and the
``kid`` of its key) with ``iss`` = its account, ``aud`` = ``tix:<owner>:federation``, ``sub`` =
what it asks for (an attachment digest), ``iat``, ``exp`` at most 60 s later and a fresh
``jti``. The owner verifies it only with the key it pinned on the link to ``iss`` (the caller
supplies those keys), with pyjwt held strict: EdDSA only, every claim required, an exact
audience, 30 s leeway, no ``crit`` header, a bounded lifetime. A user's access token (HS256,
another ``typ``) or an invitation (another ``typ`` and audience) is never taken for one.
``SeenTokens`` refuses a ``jti`` seen before while the token is still valid.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from account.config import ACCOUNT_ID_RE
from account.context import Identity

__all__ = [
    "NODE_TOKEN_TYP",
    "NodeClaims",
    "NodeTokenError",
    "SeenTokens",
    "federation_audience",
    "mint_node_token",
    "read_node_token",
]

NODE_TOKEN_TYP = "tix-node+jwt"  # noqa: S105  (a JWT type name, not a secret)
MAX_LIFETIME_SECONDS = 60
LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 4_096
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
_KID_RE = re.compile(r"^[0-9a-f]{16}$")

KeyLookup = Callable[[str, str], Sequence[Ed25519PublicKey]]
"""``(issuer, kid)`` → the keys pinned for that issuer under that kid (usually one, or none)."""


class NodeTokenError(Exception):
    """The token does not authenticate; the message is for logs, never for the caller."""


@dataclass(frozen=True)
class NodeClaims:
    issuer: str
    subject: str
    jti: str
    expires_at: int


def federation_audience(account_id: str) -> str:
    return f"tix:{account_id}:federation"


def mint_node_token(
    *,
    identity: Identity,
    audience_account: str,
    subject: str,
    lifetime: int = MAX_LIFETIME_SECONDS,
    now: float | None = None,
) -> str:
    """A token for one request from ``identity`` to ``audience_account`` about ``subject``."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": identity.account_id,
        "aud": federation_audience(audience_account),
        "sub": subject,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(
        claims,
        identity.key,
        algorithm="EdDSA",
        headers={"kid": identity.kid, "typ": NODE_TOKEN_TYP},
    )


def read_node_token(token: str, *, audience_account: str, keys: KeyLookup) -> NodeClaims:
    """Verify a node token addressed to ``audience_account``; ``NodeTokenError`` if not valid."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise NodeTokenError("missing or oversized token")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise NodeTokenError("not a JWT") from exc
    if header.get("alg") != "EdDSA" or header.get("typ") != NODE_TOKEN_TYP or "crit" in header:
        raise NodeTokenError("not a node token")
    kid, issuer = header.get("kid"), unverified.get("iss")
    if not isinstance(kid, str) or not _KID_RE.match(kid):
        raise NodeTokenError("bad kid")
    if not isinstance(issuer, str) or not ACCOUNT_ID_RE.match(issuer):
        raise NodeTokenError("bad issuer")
    audience = federation_audience(audience_account)
    claims: dict[str, object] | None = None
    for key in keys(issuer, kid):
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                audience=audience,
                issuer=issuer,
                options={"require": _REQUIRED},
                leeway=LEEWAY_SECONDS,
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise NodeTokenError(f"claims refused: {exc}") from exc
    if claims is None:
        raise NodeTokenError("no pinned key verifies the token")
    iat, exp, sub, jti = claims["iat"], claims["exp"], claims["sub"], claims["jti"]
    if claims["iss"] != issuer or claims["aud"] != audience:
        raise NodeTokenError("issuer or audience is not exact")
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > MAX_LIFETIME_SECONDS:
        raise NodeTokenError("lifetime too long")
    if not isinstance(sub, str) or not isinstance(jti, str) or not 0 < len(jti) <= 100:
        raise NodeTokenError("bad sub or jti")
    return NodeClaims(issuer=issuer, subject=sub, jti=jti, expires_at=exp)


class SeenTokens:
    """The ``jti`` of tokens accepted recently, each kept until its token expires."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, claims: NodeClaims, now: float | None = None) -> bool:
        """Record the token; False when its ``jti`` was used before."""
        moment = now if now is not None else time.time()
        key = f"{claims.issuer}\x00{claims.jti}"
        with self._lock:
            if len(self._seen) > 10_000 or moment > min(self._seen.values(), default=moment):
                self._seen = {k: v for k, v in self._seen.items() if v + LEEWAY_SECONDS >= moment}
            if key in self._seen:
                return False
            self._seen[key] = claims.expires_at
            return True
