"""The archive connection of a project: set, read, disconnect (owners and site admins).

The password is encrypted with the service's :class:`~.secrets.SecretBox` before it is
stored and is never part of any view; :func:`password_of` decrypts it for the follower
only. Changing the settings raises ``generation`` so the running follower starts again
with them; changing the kind or URL also forgets the cursor (another archive's sequence
numbers mean nothing here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from segmap.server.archive.filters import filter_problems, normalised
from segmap.server.archive.secrets import SecretBox
from segmap.server.db.accounts import User
from segmap.server.db.archive import (
    ARCHIVE_KINDS,
    EVENT_IMPORTED,
    EVENT_PUSHED,
    EVENT_REFUSED,
    EVENT_SKIPPED,
    ArchiveConnection,
    ArchiveEvent,
)
from segmap.server.db.base import utcnow
from segmap.server.errors import NotFound, Unprocessable
from segmap.server.registry.access import ProjectAccess, project_access, require_manage
from segmap.server.web.auth import Principal

RECENT_EVENTS = 20


@dataclass(frozen=True)
class ConnectionSettings:
    """What a caller sets (the API's ``ConnectionIn``, the page's form)."""

    kind: str
    url: str
    username: str = ""
    password: str | None = None
    push_masks: bool = False
    filter: dict[str, Any] | None = None
    prefetch_images: bool = False


@dataclass(frozen=True)
class EventView:
    """One row of what happened."""

    event: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    instances: int
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class ConnectionView:
    """A connection as the API and the page show it: never the password."""

    project: str
    kind: str
    url: str
    username: str
    has_password: bool
    push_masks: bool
    prefetch_images: bool
    filter: dict[str, Any]
    connected_by: str | None
    connected_at: datetime
    cursor: str | None
    last_contact_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_import_at: datetime | None
    imported: int
    refused: int
    pushed: int
    recent: list[EventView]


def managed(db: Session, principal: Principal | None, project: str, action: str) -> ProjectAccess:
    """The caller's access, when they own the project or are a site admin (else 401/403/404)."""
    access = project_access(db, principal, project)
    require_manage(access, action)
    return access


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an archive's address, or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"url {url!r} must be an http:// or https:// address with a host"
    if parts.username or parts.password:
        return "put the username and password in their own fields, not in the url"
    if parts.query or parts.fragment:
        return f"url {url!r} must not have a query (?...) or fragment (#...)"
    return None


def set_connection(
    db: Session,
    principal: Principal | None,
    project: str,
    new: ConnectionSettings,
    box: SecretBox,
) -> ArchiveConnection:
    """Connect the project to an archive, or change its connection (committed)."""
    access = managed(db, principal, project, "connect the project to an archive")
    problems = []
    if new.kind not in ARCHIVE_KINDS:
        problems.append(f"kind must be one of {', '.join(ARCHIVE_KINDS)}, not {new.kind!r}")
    if (problem := url_problem(new.url)) is not None:
        problems.append(problem)
    problems.extend(filter_problems(new.filter or {}))
    if problems:
        raise Unprocessable("; ".join(problems), problems=problems)
    url = new.url.strip().rstrip("/")
    row = db.get(ArchiveConnection, access.project.id)
    if row is None:
        row = ArchiveConnection(project_id=access.project.id, generation=0)
        db.add(row)
    elif (row.kind, row.url) != (new.kind, url):
        row.cursor = None
    if new.password is not None:
        row.password_encrypted = box.encrypt(new.password) if new.password else None
    elif row.username != new.username.strip() or row.url != url:
        row.password_encrypted = None  # a password belongs to one account of one archive
    row.kind, row.url, row.username = new.kind, url, new.username.strip()
    row.push_masks = new.push_masks
    row.prefetch_images = new.prefetch_images
    row.filter = normalised(new.filter or {})
    row.connected_by_id = access.principal.id
    row.generation = (row.generation or 0) + 1
    row.updated_at = utcnow()
    row.last_error = row.last_error_at = None
    # What the old filter skipped is looked at again with the new one.
    db.execute(
        delete(ArchiveEvent).where(
            ArchiveEvent.project_id == row.project_id, ArchiveEvent.event == EVENT_SKIPPED
        )
    )
    db.commit()
    return row


def get_connection(db: Session, principal: Principal | None, project: str) -> ArchiveConnection:
    """The project's connection; 404 when it follows no archive."""
    access = managed(db, principal, project, "see the archive connection")
    row = db.get(ArchiveConnection, access.project.id)
    if row is None:
        raise NotFound(
            f"project {access.project.id!r} is not connected to an archive; "
            f"connect it with PUT /api/v1/projects/{access.project.id}/archive"
        )
    return row


def find_connection(
    db: Session, principal: Principal | None, project: str
) -> tuple[ProjectAccess, ArchiveConnection | None]:
    """The caller's (managing) access and the connection, None when there is none."""
    access = managed(db, principal, project, "see the archive connection")
    return access, db.get(ArchiveConnection, access.project.id)


def delete_connection(db: Session, principal: Principal | None, project: str) -> None:
    """Disconnect (committed): the follower stops; what was imported stays."""
    row = get_connection(db, principal, project)
    db.delete(row)
    db.commit()


def password_of(row: ArchiveConnection, box: SecretBox) -> str:
    """The decrypted password ('' when none); for the follower and the test only."""
    return box.decrypt(row.password_encrypted) if row.password_encrypted else ""


def settings_to_test(
    db: Session, principal: Principal | None, project: str, new: ConnectionSettings, box: SecretBox
) -> tuple[str, str, str, str]:
    """``(kind, url, username, password)`` for Test connection with ``new``'s values.

    A password left out (None) means the stored one, but only while the URL and username
    are the stored ones: a changed URL must never be sent the old archive's password.
    The session is rolled back, so no lock is held while the archive is called.
    """
    _, row = find_connection(db, principal, project)
    if (problem := url_problem(new.url)) is not None:
        raise Unprocessable(problem)
    url, username = new.url.strip().rstrip("/"), new.username.strip()
    password = new.password
    if password is None:
        same = row is not None and row.url == url and row.username == username
        password = password_of(row, box) if same and row is not None else ""
    db.rollback()
    return new.kind, url, username, password


def present_connection(db: Session, row: ArchiveConnection) -> ConnectionView:
    """The view of a connection with its follower's state and recent events."""
    counts = dict(
        db.execute(
            select(ArchiveEvent.event, func.count())
            .where(ArchiveEvent.project_id == row.project_id)
            .group_by(ArchiveEvent.event)
        ).all()
    )
    recent = db.scalars(
        select(ArchiveEvent)
        .where(ArchiveEvent.project_id == row.project_id)
        .order_by(ArchiveEvent.id.desc())
        .limit(RECENT_EVENTS)
    ).all()
    user = db.get(User, row.connected_by_id) if row.connected_by_id else None
    return ConnectionView(
        project=row.project_id,
        kind=row.kind,
        url=row.url,
        username=row.username,
        has_password=row.password_encrypted is not None,
        push_masks=row.push_masks,
        prefetch_images=row.prefetch_images,
        filter=dict(row.filter or {}),
        connected_by=user.username if user else None,
        connected_at=row.connected_at,
        cursor=row.cursor,
        last_contact_at=row.last_contact_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        last_import_at=row.last_import_at,
        imported=counts.get(EVENT_IMPORTED, 0),
        refused=counts.get(EVENT_REFUSED, 0),
        pushed=counts.get(EVENT_PUSHED, 0),
        recent=[
            EventView(
                e.event,
                e.study_instance_uid,
                e.series_instance_uid,
                e.modality,
                e.instances,
                e.detail,
                e.created_at,
            )
            for e in recent
        ],
    )
