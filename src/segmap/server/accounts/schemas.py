"""JSON shapes of the auth API (pydantic)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class TokenRequest(BaseModel):
    """Credentials exchanged for an API token."""

    # Unknown members are refused so a mistyped field name is reported, not ignored.
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str


class TokenOut(BaseModel):
    """A new API token: send it as ``Authorization: Bearer <token>``."""

    token: str
    expires_at: datetime | None = None
    """When the token stops working (UTC); None when tokens never expire."""


class MeOut(BaseModel):
    """The caller."""

    username: str
    is_admin: bool


class PasswordChangeIn(BaseModel):
    """A new password for the caller, with the current one as proof."""

    model_config = ConfigDict(extra="forbid")

    current_password: str
    new_password: str
