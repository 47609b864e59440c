"""Errors of the hub's services, each with the HTTP status the API answers with."""

from __future__ import annotations


class HubError(Exception):
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(HubError):
    status = 401


class Forbidden(HubError):
    status = 403


class NotFound(HubError):
    status = 404


class Conflict(HubError):
    status = 409


class TooLarge(HubError):
    status = 413


class Invalid(HubError):
    status = 422
