"""Projects and their members.

Any logged-in user may create a project and becomes its owner (as in XNAT, where users
create their own projects); site admins see and manage every project.

Members and which usernames exist: only owners and site admins may add or remove
members, and everyone else is refused (403) before any username is looked at, so the
answer is the same whether the name exists. For owners, a name with no account and a
disabled account answer alike (404, one sentence), and removing someone who is not a
member answers the same whether or not the account exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.server.accounts.service import find_user
from segmap.server.db.registry import ROLE_OWNER, ROLES, Membership, Project
from segmap.server.errors import Conflict, Forbidden, NotFound, Unprocessable
from segmap.server.names import (
    MAX_PROJECT_NAME_CHARS,
    check_display_text,
    check_project_id,
    name_key,
)
from segmap.server.registry.access import ProjectAccess, project_access, require_manage
from segmap.server.web.auth import Principal, require_principal


@dataclass(frozen=True)
class ProjectEntry:
    """A project as listed for a user, with that user's role (None: admin, not a member)."""

    project: Project
    role: str | None


def list_projects(db: Session, principal: Principal | None) -> list[ProjectEntry]:
    """Projects the caller belongs to (all projects for a site admin), by id."""
    who = require_principal(principal)
    rows = db.execute(
        select(Membership.project_id, Membership.role).where(Membership.user_id == who.id)
    )
    roles = {project_id: role for project_id, role in rows}
    query = select(Project).options(selectinload(Project.created_by)).order_by(Project.id_key)
    if not who.is_admin:
        query = query.where(Project.id.in_(list(roles)))
    return [ProjectEntry(p, roles.get(p.id)) for p in db.scalars(query)]


def get_project(db: Session, principal: Principal | None, project_id: str) -> ProjectAccess:
    """One project and the caller's access to it (401/403/404 as ``ServiceError``)."""
    return project_access(db, principal, project_id)


def can_create_projects(principal: Principal) -> bool:
    """Whether ``principal`` may create projects: every logged-in user may, as in XNAT.

    The one place this rule lives: ``create_project`` applies it and the pages ask it
    whether to show the New Project form.
    """
    return principal is not None  # a site could narrow this to principal.is_admin


def create_project(db: Session, principal: Principal | None, project_id: str, name: str) -> Project:
    """Create a project owned by the caller (committed)."""
    who = require_principal(principal)
    if not can_create_projects(who):
        raise Forbidden("you may not create projects; ask a site administrator")
    check_project_id(project_id)
    if not (name or "").strip():
        raise Unprocessable("the project name is empty; give the project a name")
    name = check_display_text(name, "project name", MAX_PROJECT_NAME_CHARS)
    existing = db.scalar(select(Project).where(Project.id_key == name_key(project_id)))
    if existing is not None:
        raise Conflict(f"a project with id {existing.id!r} already exists")
    project = Project(id=project_id, id_key=name_key(project_id), name=name, created_by_id=who.id)
    db.add(project)
    db.add(Membership(project_id=project_id, user_id=who.id, role=ROLE_OWNER))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"a project with id {project_id!r} already exists") from None
    return project


@dataclass(frozen=True)
class MemberEntry:
    """A member of a project."""

    username: str
    role: str


def list_members(db: Session, principal: Principal | None, project_id: str) -> list[MemberEntry]:
    """Members of a project with their roles (anyone who can read the project may see)."""
    access = project_access(db, principal, project_id)
    rows = db.scalars(select(Membership).where(Membership.project_id == access.project.id)).all()
    entries = [MemberEntry(m.user.username, m.role) for m in rows]
    return sorted(entries, key=lambda e: (ROLES.index(e.role), e.username.casefold()))


def set_member(
    db: Session, principal: Principal | None, project_id: str, username: str, role: str
) -> bool:
    """Give ``username`` a role in the project (committed); True when newly added.

    Owners and admins only. Refuses to demote the last owner, so a project always has one.
    """
    access = project_access(db, principal, project_id)
    require_manage(access, "add members")
    if role not in ROLES:
        raise Unprocessable(f"the role {role!r} is not one of {', '.join(ROLES)}")
    user = find_user(db, username)
    if user is None or not user.is_active:
        # A disabled account is answered like a missing one: owners learn nothing more.
        raise NotFound(f"there is no user {username!r}")
    membership = db.get(Membership, (access.project.id, user.id))
    if membership is None:
        db.add(Membership(project_id=access.project.id, user_id=user.id, role=role))
        created = True
    else:
        if membership.role == ROLE_OWNER and role != ROLE_OWNER:
            _refuse_last_owner(db, access.project.id, user.username)
        membership.role = role
        created = False
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"{username!r} was added to the project at the same time; retry") from None
    return created


def remove_member(db: Session, principal: Principal | None, project_id: str, username: str) -> None:
    """Take ``username`` out of the project (committed). Owners and admins only."""
    access = project_access(db, principal, project_id)
    require_manage(access, "remove members")
    user = find_user(db, username)
    membership = None if user is None else db.get(Membership, (access.project.id, user.id))
    if user is None or membership is None:
        # The same words whether or not the account exists.
        raise NotFound(f"{username!r} is not a member of project {access.project.id!r}")
    if membership.role == ROLE_OWNER:
        _refuse_last_owner(db, access.project.id, user.username)
    db.delete(membership)
    db.commit()


def _refuse_last_owner(db: Session, project_id: str, username: str) -> None:
    # The owner rows are locked (PostgreSQL; SQLite's write sessions run one at a time),
    # so two owners removing or demoting each other at once cannot both see "two owners":
    # the second waits, then counts again without the row the first took away.
    owners = db.scalars(
        select(Membership.user_id)
        .where(Membership.project_id == project_id, Membership.role == ROLE_OWNER)
        .with_for_update()
    ).all()
    if len(owners) <= 1:
        raise Conflict(
            f"{username!r} is the last owner of project {project_id!r}; make someone else "
            "owner first"
        )
