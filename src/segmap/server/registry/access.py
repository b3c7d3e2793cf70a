"""Who may do what in a project (XNAT Machine Learning permissions).

Site admins may do everything. Project owners create and delete models, manage model
files and members. Members and collaborators see and download. Anyone else: 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from segmap.server.db.registry import ROLE_OWNER, Membership, Project
from segmap.server.errors import Forbidden, NotFound
from segmap.server.names import name_key
from segmap.server.web.auth import Principal, require_principal


@dataclass(frozen=True)
class ProjectAccess:
    """A project and what the caller may do in it.

    ``role`` is the caller's project role, or None for a site admin who is not a member.
    """

    project: Project
    principal: Principal
    role: str | None

    @property
    def is_admin(self) -> bool:
        """Whether the caller is a site admin."""
        return self.principal.is_admin

    @property
    def can_manage(self) -> bool:
        """Create/delete models, manage files and members (owners and admins)."""
        return self.principal.is_admin or self.role == ROLE_OWNER

    @property
    def can_read(self) -> bool:
        """See and download (every role and admins)."""
        return self.principal.is_admin or self.role is not None


def project_access(db: Session, principal: Principal | None, project_id: str) -> ProjectAccess:
    """The caller's access to a project; raises 401, 404 or 403 (``ServiceError``)."""
    who = require_principal(principal)
    # Looked up by the same key that keeps ids unique (case-insensitive), so "liver01"
    # opens the project "LIVER01" rather than 404 beside a 409 for creating it.
    # One query for the project and the caller's role in it (None: not a member).
    row = db.execute(
        select(Project, Membership.role)
        .outerjoin(
            Membership,
            and_(Membership.project_id == Project.id, Membership.user_id == who.id),
        )
        .where(Project.id_key == name_key(project_id))
    ).first()
    if row is None:
        raise NotFound(f"there is no project {project_id!r}")
    project, role = row
    access = ProjectAccess(project=project, principal=who, role=role)
    if not access.can_read:
        raise Forbidden(
            f"you are not a member of project {project.id!r}; ask one of its owners to add you"
        )
    return access


def require_manage(access: ProjectAccess, action: str) -> None:
    """Raise ``Forbidden`` unless the caller owns the project or is a site admin."""
    if not access.can_manage:
        role = access.role or "no role"
        raise Forbidden(
            f"only project owners and site admins can {action}; you are {role} "
            f"in project {access.project.id!r}"
        )
