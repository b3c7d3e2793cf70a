"""Tables of accounts: users, API tokens (``0001``), log-in sessions and throttles (``0005``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from segmap.server.db.base import Base, UTCDateTime, utcnow


class User(Base):
    """An account. ``username_key`` (case-folded) keeps ``Alice`` and ``alice`` apart."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token; only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()


class LoginSession(Base):
    """A browser log-in. ``id`` is the SHA-256 hex of the random token the cookie carries.

    The row is the log-in: deleting it (log-out, password change, disabling the account)
    ends the session at once, whatever cookie the browser still holds.
    """

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)


class LoginThrottle(Base):
    """Failed log-ins of one account or one client address in the current window.

    ``key`` is the SHA-256 hex of ``kind`` and the value (the case-folded username or the
    address), so arbitrary submitted names are never stored. Kept in the database so the
    count holds across worker processes and restarts.
    """

    __tablename__ = "login_throttles"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
