"""Who is calling: the principal from a bearer token or the session cookie, log-in and CSRF.

Pages use ``login``/``logout``/``csrf_token``/``check_csrf`` with the request; the API and
pages find the caller with ``principal_from_request`` (through ``deps``). Every service
function takes the resulting :class:`Principal` and asks :func:`require_principal`.
Passwords are hashed in ``segmap.server.accounts.passwords``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection, Request

from segmap.server.db.accounts import ApiToken, User
from segmap.server.db.base import utcnow
from segmap.server.errors import Forbidden, NotAuthenticated

TOKEN_PREFIX = "smp_"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def principal_from_token(db: Session, token: str, max_age_s: int) -> Principal | None:
    """The owner of an API token, or None when the token is unknown or the user disabled.

    Raises ``NotAuthenticated`` for a token older than ``max_age_s`` seconds (0: tokens
    never expire), saying how to get a new one.
    """
    row = db.execute(
        select(User, ApiToken.created_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_digest(token))
    ).first()
    if row is None:
        return None
    user, created_at = row
    if not user.is_active:
        return None
    if max_age_s > 0 and created_at < utcnow() - timedelta(seconds=max_age_s):
        raise NotAuthenticated(
            f"the API token has expired (tokens last {max_age_s // 3600} hours); get a new "
            "one with POST /api/v1/auth/token"
        )
    return principal_of(user, "token")


def principal_from_request(
    conn: HTTPConnection, db: Session, token_max_age_s: int
) -> Principal | None:
    """The caller: a bearer token when an Authorization header is sent, else the cookie.

    Bearer tokens older than ``token_max_age_s`` seconds are refused (0: never).

    Raises ``NotAuthenticated`` for a malformed or unknown bearer token (rather than
    silently falling back to the cookie), so scripts learn that their token is wrong.
    """
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
        principal = principal_from_token(db, value.strip(), token_max_age_s)
        if principal is None:
            raise NotAuthenticated(
                "the API token is not valid (revoked or mistyped); get a new one with "
                "POST /api/v1/auth/token"
            )
        return principal
    uid = conn.session.get("uid") if "session" in conn.scope else None
    if not isinstance(uid, int):
        return None
    user = db.get(User, uid)
    if user is None or not user.is_active:
        return None
    return principal_of(user, "session")


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


def login(conn: HTTPConnection, principal: Principal) -> None:
    """Start a browser session for ``principal`` (with a new CSRF token)."""
    conn.session.clear()
    conn.session["uid"] = principal.id
    conn.session["csrf"] = secrets.token_urlsafe(32)


def logout(conn: HTTPConnection) -> None:
    """End the browser session (the cookie is deleted in the response)."""
    conn.session.clear()
