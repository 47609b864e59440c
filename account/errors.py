"""Exceptions of the account layer (services and pure helpers; nothing here knows HTTP).

``AccountError``
├── ``NotFound``            no such object in the caller's scope (never reveal that it exists)
├── ``Conflict``            a duplicate, or a state transition that is not allowed now
├── ``Forbidden``           the caller may see the object but not do this to it
├── ``Invalid``             the input is well-formed but makes no sense for the domain
└── ``InvalidCredentials``  a password, access token or API key that does not authenticate

Services raise these with a short, user-safe message (it becomes the response ``detail``);
the HTTP edge (``account.http_errors.install_error_handlers``) maps them to 404, 409, 403,
400 and 401. Other edges (CLI, mail adapter) map them their own way.
"""

from __future__ import annotations

__all__ = ["AccountError", "Conflict", "Forbidden", "Invalid", "InvalidCredentials", "NotFound"]


class AccountError(Exception):
    """Base of every error raised by the account layer."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail or self.default_detail

    default_detail = "account error"


class NotFound(AccountError):
    """The object does not exist, or is outside the caller's scope."""

    default_detail = "not found"


class Conflict(AccountError):
    """A duplicate, or a state transition that is not allowed from the current state."""

    default_detail = "conflict"


class Forbidden(AccountError):
    """The caller is not allowed to do this."""

    default_detail = "forbidden"


class Invalid(AccountError):
    """The input is not acceptable for the domain (beyond what schema validation checks)."""

    default_detail = "invalid input"


class InvalidCredentials(AccountError):
    """Credentials that do not authenticate; one class so every failure looks the same."""

    default_detail = "invalid credentials"
