"""Errors the service layer raises; each carries the HTTP status the API answers with.

The pages catch the same exceptions to show a friendly message, so the rules (who may do
what, which names are allowed) live in one place: the services.
"""

from __future__ import annotations

from typing import Any

from segmap.errors import SegmapError


class ServiceError(SegmapError):
    """A request the service refuses; ``status_code`` is the HTTP answer, ``str()`` the reason."""

    status_code = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        # Extra JSON members sent beside "detail" (e.g. the region map's "problems").
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries (e.g. ``Retry-After``); none by default."""
        return {}


class NotAuthenticated(ServiceError):
    """No valid credentials were given (HTTP 401)."""

    status_code = 401


class Forbidden(ServiceError):
    """The caller is known but lacks the role the action needs (HTTP 403)."""

    status_code = 403


class NotFound(ServiceError):
    """The project, model, folder or file named does not exist (HTTP 404)."""

    status_code = 404


class Conflict(ServiceError):
    """The request clashes with what already exists (HTTP 409)."""

    status_code = 409


class PayloadTooLarge(ServiceError):
    """An upload is larger than the configured limit (HTTP 413)."""

    status_code = 413


class Unprocessable(ServiceError):
    """Well-formed request with content the rules refuse: a bad name, an invalid map (422)."""

    status_code = 422
