"""Who is calling: the principal from a bearer token or a log-in session, log-in and CSRF.

Pages use ``login``/``logout``/``csrf_token``/``check_csrf`` with the request; the API and
pages find the caller with ``principal_from_request`` (through ``deps``). Every service
function takes the resulting :class:`Principal` and asks :func:`require_principal`.
Passwords are hashed in ``segmap.server.accounts.passwords``.

A browser log-in is a ``login_sessions`` row. The signed cookie
(``web.session_cookie``) carries only a random session token, the CSRF token and
flash messages; the row is found by the token's SHA-256, so deleting the row (log-out,
password change, a disabled account) ends the log-in at once, wherever the cookie is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection, Request

from segmap.server.db.accounts import ApiToken, LoginSession, User
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.errors import Forbidden, NotAuthenticated

TOKEN_PREFIX = "smp_"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = "sid"
# ``last_seen_at`` is refreshed at most this often (seconds): it is for the admin's
# overview, and a write on every request would queue readers behind SQLite's write lock.
TOUCH_EVERY_S = 300
USER_AGENT_CHARS = 200


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, detached from any database session.

    ``via`` is ``"token"`` for bearer tokens and ``"session"`` for browser cookies.
    """

    id: int
    username: str
    is_admin: bool
    via: str = "session"


def new_token() -> str:
    """A fresh API token (shown once to the user, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest kept in the database in place of the token.

    A fast hash is enough here: tokens are 256 random bits, so they cannot be guessed
    from the digest the way passwords could.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def require_principal(principal: Principal | None) -> Principal:
    """Raise ``NotAuthenticated`` when nobody is logged in."""
    if principal is None:
        raise NotAuthenticated(
            "log in first: send 'Authorization: Bearer <token>' (POST /api/v1/auth/token "
            "gives one) or use the log-in page"
        )
    return principal


def principal_of(user: User, via: str) -> Principal:
    """The detached principal for a user row."""
    return Principal(id=user.id, username=user.username, is_admin=user.is_admin, via=via)


TOKEN_OWNER = (
    select(
        User.id.label("user_id"),
        User.username.label("username"),
        User.is_admin.label("is_admin"),
        User.is_active.label("is_active"),
        ApiToken.created_at.label("token_created_at"),
    )
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
"""The owner of a bearer token and the token's creation time, one row or none.

Parameter ``token_hash`` (:func:`token_digest`). Built once and run as Core (plain rows):
on every API call, building the statement and loading a ``User`` object cost more than
the query itself; the token is a bound parameter, so the compiled SQL is cached too.
Callers may extend it (``dicomweb.auth`` joins the caller's project role to it) and
decide on its row with :func:`token_principal`.
"""


def token_principal(row: Any, max_age_s: int) -> Principal:
    """The caller a :data:`TOKEN_OWNER` row names (``row`` None: no such token).

    Raises ``NotAuthenticated`` for an unknown token or a disabled account, and for a
    token older than ``max_age_s`` seconds (0: tokens never expire), saying how to get a
    new one.
    """
    if row is None or not row.is_active:
        raise NotAuthenticated(
            "the API token is not valid (revoked or mistyped); get a new one with "
            "POST /api/v1/auth/token"
        )
    if max_age_s > 0 and row.token_created_at < utcnow() - timedelta(seconds=max_age_s):
        raise NotAuthenticated(
            f"the API token has expired (tokens last {max_age_s // 3600} hours); get a new "
            "one with POST /api/v1/auth/token"
        )
    return Principal(id=row.user_id, username=row.username, is_admin=row.is_admin, via="token")


def principal_from_token(db: Session, token: str, max_age_s: int) -> Principal:
    """The owner of an API token (see :func:`token_principal` for the refusals)."""
    found = db.connection().execute(TOKEN_OWNER, {"token_hash": token_digest(token)}).first()
    return token_principal(found, max_age_s)


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value; 401 otherwise."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    return value.strip()


def current_session_id(conn: HTTPConnection) -> str | None:
    """The ``login_sessions`` id of this browser's log-in (None without a cookie log-in)."""
    if "session" not in conn.scope:
        return None
    token = conn.session.get(SESSION_KEY)
    return token_digest(token) if isinstance(token, str) and token else None


def principal_from_session(db: Session, session_id: str) -> Principal | None:
    """The user of a live log-in session; None when it is gone, expired or the user disabled.

    Refreshes the session's ``last_seen_at`` when it is older than ``TOUCH_EVERY_S``
    (ending ``db``'s read transaction first; best effort: a busy database skips it).
    """
    now = utcnow()
    row = db.execute(
        select(User, LoginSession.expires_at, LoginSession.last_seen_at)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(LoginSession.id == session_id)
    ).first()
    if row is None:
        return None
    user, expires_at, last_seen_at = row
    if expires_at <= now or not user.is_active:
        return None
    principal = principal_of(user, "session")
    if last_seen_at < now - timedelta(seconds=TOUCH_EVERY_S):
        db.rollback()  # the update starts a transaction of its own: no stale-read upgrade
        try:
            db.execute(
                update(LoginSession).where(LoginSession.id == session_id).values(last_seen_at=now)
            )
            db.commit()
        except OperationalError:
            db.rollback()
    return principal


def principal_from_request(
    conn: HTTPConnection, db: Session, token_max_age_s: int
) -> Principal | None:
    """The caller: a bearer token when an Authorization header is sent, else the log-in.

    Bearer tokens older than ``token_max_age_s`` seconds are refused (0: never).

    Raises ``NotAuthenticated`` for a malformed or unknown bearer token (rather than
    silently falling back to the cookie), so scripts learn that their token is wrong.
    """
    header = conn.headers.get("authorization")
    if header is not None:
        return principal_from_token(db, bearer_token(header), token_max_age_s)
    session_id = current_session_id(conn)
    return principal_from_session(db, session_id) if session_id else None


def csrf_token(conn: HTTPConnection) -> str:
    """The CSRF token of this browser session (made on first use).

    Put it in every form as a hidden field named ``csrf_token``, and send it as the
    ``X-CSRF-Token`` header from JavaScript calls to the API.
    """
    token = conn.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        conn.session["csrf"] = token
    return token


def check_csrf(conn: HTTPConnection, submitted: str | None) -> None:
    """Raise ``Forbidden`` unless ``submitted`` equals the session's CSRF token."""
    expected = conn.session.get("csrf") if "session" in conn.scope else None
    if (
        not isinstance(expected, str)
        or not submitted
        or not hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise Forbidden(
            "the form's security token is missing or out of date; reload the page and try again"
        )


def check_api_csrf(request: Request, principal: Principal | None) -> None:
    """For cookie-authenticated API calls that change things, require the CSRF header."""
    if principal is None or principal.via != "session" or request.method in SAFE_METHODS:
        return
    check_csrf(request, request.headers.get(CSRF_HEADER))


def _database(conn: HTTPConnection) -> Database:
    database: Database = conn.app.state.database
    return database


def login(conn: HTTPConnection, principal: Principal) -> None:
    """Start a browser log-in for ``principal``: a new session row, token and CSRF token.

    Opens a short write session of its own, so the caller must hold no write transaction.
    The log-in lasts the app's ``Settings.session_max_age_s`` seconds. A log-in this
    browser had before is ended (a fresh token each time: no session fixation).
    """
    max_age_s = int(conn.app.state.settings.session_max_age_s)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    previous = current_session_id(conn)
    with _database(conn).session(write=True) as db:
        if previous:
            db.execute(delete(LoginSession).where(LoginSession.id == previous))
        # Expired rows (anyone's) go now; nothing reads them any more.
        db.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
        agent = conn.headers.get("user-agent", "")[:USER_AGENT_CHARS] or None
        db.add(
            LoginSession(
                id=token_digest(token),
                user_id=principal.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(seconds=max_age_s),
                user_agent=agent,
            )
        )
        db.commit()
    conn.session.clear()
    conn.session[SESSION_KEY] = token
    conn.session["csrf"] = secrets.token_urlsafe(32)
    forget_principal(conn)


def logout(conn: HTTPConnection) -> None:
    """End the browser's log-in: its session row is deleted and the cookie cleared.

    Opens a short write session of its own, like :func:`login`.
    """
    session_id = current_session_id(conn)
    if session_id:
        with _database(conn).session(write=True) as db:
            db.execute(delete(LoginSession).where(LoginSession.id == session_id))
            db.commit()
    conn.session.clear()
    forget_principal(conn)


_CACHE_KEY = "segmap_principal"


def cached_principal(conn: HTTPConnection) -> tuple[bool, Principal | None]:
    """(found, principal) remembered for this request by :func:`remember_principal`."""
    state = conn.scope.get("state")
    if isinstance(state, dict) and _CACHE_KEY in state:
        value = state[_CACHE_KEY]
        return True, value if isinstance(value, Principal) else None
    return False, None


def remember_principal(conn: HTTPConnection, principal: Principal | None) -> None:
    """Keep this request's caller, so error pages need no second look-up."""
    conn.scope.setdefault("state", {})[_CACHE_KEY] = principal


def forget_principal(conn: HTTPConnection) -> None:
    """Drop the remembered caller (the log-in changed during this request)."""
    state = conn.scope.get("state")
    if isinstance(state, dict):
        state.pop(_CACHE_KEY, None)
