"""Accounts: creating users, checking passwords, log-ins, issuing and revoking API tokens.

Disabling, enabling and deleting accounts is in ``accounts.admin``; the throttle of
failed log-ins in ``accounts.throttle``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.server.accounts import passwords, throttle
from segmap.server.db.accounts import ApiToken, LoginSession, User
from segmap.server.db.engine import read_first
from segmap.server.errors import (
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    Unprocessable,
)
from segmap.server.names import check_username, name_key
from segmap.server.web import auth
from segmap.server.web.auth import Principal


def count_users(db: Session) -> int:
    """How many accounts exist."""
    return int(db.scalar(select(func.count()).select_from(User)) or 0)


def find_user(db: Session, username: str) -> User | None:
    """The account with this username (compared case-insensitively), if any."""
    return db.scalar(select(User).where(User.username_key == name_key(username)))


def get_user(db: Session, username: str) -> User:
    """The account with this username; ``NotFound`` otherwise."""
    user = find_user(db, username)
    if user is None:
        raise NotFound(f"there is no user {username!r}")
    return user


def create_user(db: Session, username: str, password: str, *, is_admin: bool = False) -> User:
    """Create an account (committed). Refuses bad names, empty passwords and duplicates."""
    check_username(username)
    if not password:
        raise Unprocessable("the password is empty; choose a password")
    user = User(
        username=username,
        username_key=name_key(username),
        password_hash=passwords.hash_password(password),
        is_admin=is_admin,
        is_active=True,
    )
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"a user named {username!r} already exists") from None
    return user


@dataclass(frozen=True)
class Ended:
    """How many log-in sessions and API tokens a change ended."""

    sessions: int
    tokens: int


def end_access(db: Session, user_id: int, keep_session: str | None = None) -> Ended:
    """Delete the user's log-in sessions (all but ``keep_session``, an id) and API tokens.

    Not committed: the caller commits it with the change that calls for it, so the
    password (or the disabled flag) and the revocation take effect together.
    """
    sessions = delete(LoginSession).where(LoginSession.user_id == user_id)
    if keep_session is not None:
        sessions = sessions.where(LoginSession.id != keep_session)
    ended_sessions = db.execute(sessions)
    ended_tokens = db.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
    return Ended(
        int(getattr(ended_sessions, "rowcount", 0) or 0),
        int(getattr(ended_tokens, "rowcount", 0) or 0),
    )


def set_password(
    db: Session, username: str, password: str, *, keep_session: str | None = None
) -> Ended:
    """Replace a user's password (committed) and end their other access.

    Every log-in session but ``keep_session`` (the id of the one making the change, if
    any) ends, and every API token is revoked: whoever knew the old password keeps
    nothing it gave them. No permission check: the callers are the command line (the
    operator) and :func:`change_own_password`.
    """
    if not password:
        raise Unprocessable("the password is empty; choose a password")
    user = get_user(db, username)
    user.password_hash = passwords.hash_password(password)
    ended = end_access(db, user.id, keep_session)
    db.commit()
    return ended


def change_own_password(
    db: Session,
    principal: Principal | None,
    current: str,
    new: str,
    *,
    address: str | None,
    keep_session: str | None = None,
) -> Ended:
    """The caller changes their password, proving the current one (committed).

    Throttled like a log-in. Ends the caller's other sessions and all their API tokens
    (also the one this request may be made with); ``keep_session`` stays logged in.
    """
    who = auth.require_principal(principal)
    if not new:
        raise Unprocessable("the new password is empty; choose a password")
    if log_in(db, who.username, current, address=address, via=who.via) is None:
        raise Forbidden("the current password is wrong; nothing was changed")
    return set_password(db, who.username, new, keep_session=keep_session)


def list_users(db: Session) -> list[User]:
    """Every account, by username."""
    return list(db.scalars(select(User).order_by(User.username_key)))


def authenticate(
    db: Session, username: str, password: str, via: str = "session"
) -> Principal | None:
    """The principal when ``password`` is right for ``username``; None otherwise.

    Takes the same time whether or not the user exists. Upgrades old hashes in passing.
    Ends the session's current transaction before the (deliberately slow) hash check, so
    no database lock is held meanwhile.
    """
    read_first(db)
    user = find_user(db, username) if username else None
    if user is None or not user.is_active:
        db.rollback()
        passwords.dummy_verify(password)
        return None
    user_id, stored = user.id, user.password_hash
    principal = auth.principal_of(user, via)
    db.rollback()
    if not passwords.verify_password(stored, password):
        return None
    if passwords.needs_rehash(stored):
        fresh = db.get(User, user_id)
        if fresh is not None and fresh.password_hash == stored:
            fresh.password_hash = passwords.hash_password(password)
            db.commit()
    return principal


def log_in(
    db: Session, username: str, password: str, *, address: str | None, via: str = "session"
) -> Principal | None:
    """:func:`authenticate`, throttled per account and per client ``address``.

    Raises ``throttle.TooManyAttempts`` (429) when either has too many recent failures;
    the password is then not even checked, so guessing on cannot succeed.
    """
    throttle.begin_attempt(db, username, address)
    principal = authenticate(db, username, password, via=via)
    if principal is not None:
        throttle.attempt_succeeded(db, username, address)
    return principal


def require_login(
    db: Session, username: str, password: str, *, address: str | None, via: str
) -> Principal:
    """:func:`log_in`, raising ``NotAuthenticated`` for a wrong name or password."""
    principal = log_in(db, username, password, address=address, via=via)
    if principal is None:
        raise NotAuthenticated("wrong username or password")
    return principal


def issue_token(db: Session, principal: Principal) -> str:
    """A new API token for ``principal`` (committed). Only its digest is stored."""
    token = auth.new_token()
    db.add(ApiToken(user_id=principal.id, token_hash=auth.token_digest(token)))
    db.commit()
    return token


def revoke_token(db: Session, token: str) -> bool:
    """Delete a token (committed); whether it existed."""
    result = db.execute(delete(ApiToken).where(ApiToken.token_hash == auth.token_digest(token)))
    db.commit()
    return bool(getattr(result, "rowcount", 0))


def require_admin(principal: Principal, action: str) -> None:
    """Raise ``Forbidden`` unless ``principal`` is a site admin."""
    if not principal.is_admin:
        raise Forbidden(f"only site admins can {action}")
