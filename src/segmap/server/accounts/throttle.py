"""Throttling failed log-ins, per account and per client address, in the database.

Every log-in attempt is counted as a failure *before* the password is checked (and
given back when it succeeds), so parallel guesses cannot slip past the limit while the
slow hash runs. The counts live in ``login_throttles`` rows, so they hold across worker
processes, services sharing a database and restarts.

The per-address limit is the stricter one: one address alone can never reach an
account's limit, so nobody can lock a user out from one machine. Many addresses
together can, but only for the rest of the window (the account limit delays, it never
locks for good). Usernames that do not exist are counted like real ones, so the answers
do not tell which accounts exist.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.server.db.accounts import LoginThrottle
from segmap.server.db.base import utcnow
from segmap.server.errors import ServiceError
from segmap.server.names import name_key

KIND_ACCOUNT = "account"
KIND_ADDRESS = "address"


@dataclass(frozen=True)
class Limit:
    """At most ``failures`` failed log-ins per ``window_s`` seconds (a fixed window)."""

    failures: int
    window_s: int


# Defaults (documented in docs/security.md): 5 failures per address and 20 per account,
# each per 15 minutes.
ADDRESS_LIMIT = Limit(failures=5, window_s=15 * 60)
ACCOUNT_LIMIT = Limit(failures=20, window_s=15 * 60)


class TooManyAttempts(ServiceError):
    """Too many failed log-ins (HTTP 429); ``retry_after_s`` says when to try again."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` in seconds, as RFC 9110 has it for 429."""
        return {"Retry-After": str(self.retry_after_s)}


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


def _targets(username: str, address: str | None) -> list[tuple[str, str, Limit]]:
    return [
        (KIND_ADDRESS, _key(KIND_ADDRESS, address or "unknown"), ADDRESS_LIMIT),
        (KIND_ACCOUNT, _key(KIND_ACCOUNT, name_key(username)), ACCOUNT_LIMIT),
    ]


def _wait_s(row: LoginThrottle, limit: Limit, now: datetime) -> int:
    left = (row.window_start + timedelta(seconds=limit.window_s) - now).total_seconds()
    return max(1, math.ceil(left))


def begin_attempt(db: Session, username: str, address: str | None) -> None:
    """Count one log-in attempt for the account and the address (committed).

    Raises :class:`TooManyAttempts` (nothing counted) when either is over its limit.
    ``username`` is what was typed (compared case-insensitively); ``address`` the client's.
    """
    for attempt in range(2):
        try:
            _count(db, username, address)
            db.commit()
            return
        except IntegrityError:
            # Another worker made the same first row at the same moment; count again.
            db.rollback()
            if attempt:
                raise


def _count(db: Session, username: str, address: str | None) -> None:
    now = utcnow()
    longest = max(ADDRESS_LIMIT.window_s, ACCOUNT_LIMIT.window_s)
    db.execute(
        delete(LoginThrottle).where(LoginThrottle.window_start < now - timedelta(seconds=longest))
    )
    rows: list[tuple[LoginThrottle | None, str, str, Limit]] = []
    for kind, key, limit in _targets(username, address):
        row = db.scalar(
            select(LoginThrottle)
            .where(LoginThrottle.kind == kind, LoginThrottle.key == key)
            .with_for_update()
        )
        if row is not None and row.window_start <= now - timedelta(seconds=limit.window_s):
            row.window_start, row.failures = now, 0
        if row is not None and row.failures >= limit.failures:
            db.rollback()
            wait = _wait_s(row, limit, now)
            who = "from your address" if kind == KIND_ADDRESS else "for this account"
            raise TooManyAttempts(
                f"too many failed log-ins {who}; try again in {_minutes(wait)}",
                retry_after_s=wait,
            )
        rows.append((row, kind, key, limit))
    for row, kind, key, _limit in rows:
        if row is None:
            db.add(LoginThrottle(kind=kind, key=key, window_start=now, failures=1))
        else:
            row.failures += 1
    db.flush()


def _minutes(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def attempt_succeeded(db: Session, username: str, address: str | None) -> None:
    """A log-in worked (committed): the account's count is cleared, the address gets its
    attempt back (its earlier failures stay, so one good account cannot reset them)."""
    (_, address_key, _), (_, account_key, _) = _targets(username, address)
    db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.kind == KIND_ACCOUNT, LoginThrottle.key == account_key
        )
    )
    row = db.scalar(
        select(LoginThrottle)
        .where(LoginThrottle.kind == KIND_ADDRESS, LoginThrottle.key == address_key)
        .with_for_update()
    )
    if row is not None and row.failures > 0:
        row.failures -= 1
    db.commit()
