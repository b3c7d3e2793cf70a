"""Site administration of accounts: list, disable, enable and delete users.

Each function takes ``actor``: the site admin doing it (the admin page), or None for the
operator at the command line (``segmap users``), who has the database and is trusted.
An admin may not disable or delete their own account (they would lock themselves out
mid-click); the command line may.

Disabling ends the user's log-in sessions and revokes their API tokens at once; the
user cannot log in until enabled again (then with new log-ins and tokens).

Deleting is refused while the user is the only owner of a project (make someone else
owner first, or disable the account instead). Otherwise their memberships go with the
account, and what they made (projects, models, sessions, files, jobs) stays, with its
"created by" left empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from segmap.server.accounts.service import Ended, end_access, get_user, require_admin
from segmap.server.db.accounts import ApiToken, LoginSession, User
from segmap.server.db.base import utcnow
from segmap.server.db.registry import ROLE_OWNER, Membership
from segmap.server.errors import Conflict, Forbidden
from segmap.server.web.auth import Principal
from segmap.server.web.pages import format_time


@dataclass(frozen=True)
class AccountView:
    """One account as the admin page and ``segmap users list`` show it."""

    username: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    sessions: int
    tokens: int
    last_seen_at: datetime | None

    @property
    def role_text(self) -> str:
        """``site admin`` or ``user``."""
        return "site admin" if self.is_admin else "user"

    @property
    def state_text(self) -> str:
        """``active`` or ``disabled``."""
        return "active" if self.is_active else "disabled"

    @property
    def created_text(self) -> str:
        """When the account was made, in UTC."""
        return format_time(self.created_at)

    @property
    def last_seen_text(self) -> str:
        """When a live log-in last made a request (to within minutes), or a dash."""
        return format_time(self.last_seen_at)


def _check_actor(actor: Principal | None, username: str, action: str) -> None:
    if actor is None:
        return  # the operator at the command line
    require_admin(actor, f"{action} accounts")
    if actor.username.casefold() == username.casefold():
        raise Forbidden(
            f"you cannot {action} your own account; another site admin (or "
            f"'segmap users {action}' on the server) can"
        )


def list_accounts(db: Session, actor: Principal | None) -> list[AccountView]:
    """Every account by username, with its live log-ins and tokens (site admins only)."""
    if actor is not None:
        require_admin(actor, "list accounts")
    now = utcnow()
    live = (
        select(
            LoginSession.user_id,
            func.count().label("n"),
            func.max(LoginSession.last_seen_at).label("seen"),
        )
        .where(LoginSession.expires_at > now)
        .group_by(LoginSession.user_id)
        .subquery()
    )
    tokens = select(ApiToken.user_id, func.count().label("n")).group_by(ApiToken.user_id).subquery()
    rows = db.execute(
        select(User, live.c.n, live.c.seen, tokens.c.n)
        .outerjoin(live, live.c.user_id == User.id)
        .outerjoin(tokens, tokens.c.user_id == User.id)
        .order_by(User.username_key)
    ).all()
    return [
        AccountView(
            username=u.username,
            is_admin=u.is_admin,
            is_active=u.is_active,
            created_at=u.created_at,
            sessions=int(n_sessions or 0),
            tokens=int(n_tokens or 0),
            last_seen_at=seen,
        )
        for u, n_sessions, seen, n_tokens in rows
    ]


def disable_user(db: Session, actor: Principal | None, username: str) -> Ended:
    """Disable an account (committed): no log-in, and its sessions and tokens end now."""
    _check_actor(actor, username, "disable")
    user = get_user(db, username)
    user.is_active = False
    ended = end_access(db, user.id)
    db.commit()
    return ended


def enable_user(db: Session, actor: Principal | None, username: str) -> None:
    """Let a disabled account log in again (committed)."""
    _check_actor(actor, username, "enable")
    user = get_user(db, username)
    user.is_active = True
    db.commit()


def sole_owned_projects(db: Session, user_id: int) -> list[str]:
    """Ids of the projects whose only owner is this user."""
    others = aliased(Membership)
    other_owners = (
        select(others.user_id)
        .where(
            others.project_id == Membership.project_id,
            others.role == ROLE_OWNER,
            others.user_id != user_id,
        )
        .exists()
    )
    query = (
        select(Membership.project_id)
        .where(Membership.user_id == user_id, Membership.role == ROLE_OWNER, ~other_owners)
        .order_by(Membership.project_id)
    )
    return list(db.scalars(query))


def delete_user(db: Session, actor: Principal | None, username: str) -> str:
    """Delete an account (committed) and return its username; see the module doc.

    Raises ``Conflict`` naming the projects the user alone owns.
    """
    _check_actor(actor, username, "delete")
    user = get_user(db, username)
    owned = sole_owned_projects(db, user.id)
    if owned:
        listed = ", ".join(repr(p) for p in owned[:10]) + (" ..." if len(owned) > 10 else "")
        raise Conflict(
            f"{user.username!r} is the only owner of project{'s' if len(owned) > 1 else ''} "
            f"{listed}; make someone else owner first, or disable the account instead"
        )
    name = user.username
    end_access(db, user.id)
    db.delete(user)
    db.commit()
    return name
