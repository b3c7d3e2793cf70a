"""Accounts: creating users, checking passwords, issuing and revoking API tokens."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.server.accounts import passwords
from segmap.server.db.accounts import ApiToken, User
from segmap.server.db.engine import read_first
from segmap.server.errors import Conflict, Forbidden, NotFound, Unprocessable
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


def set_password(db: Session, username: str, password: str) -> None:
    """Replace a user's password (committed); existing API tokens stay valid."""
    if not password:
        raise Unprocessable("the password is empty; choose a password")
    user = get_user(db, username)
    user.password_hash = passwords.hash_password(password)
    db.commit()


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
