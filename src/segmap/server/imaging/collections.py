"""Reading a session's ROI collections, and finding one by id or ``SESSION/LABEL``.

A collection's ``label`` is unique in its session (compared case-insensitively). The
functions with a ``principal`` let every project role read; ``collection_file`` and
``project_collections`` are for jobs (no check).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from segmap.imaging.sop_classes import CollectionKind
from segmap.server.db.imaging import ImagingSession, RoiCollection
from segmap.server.errors import NotFound, Unprocessable
from segmap.server.imaging.lookup import find_session
from segmap.server.names import name_key
from segmap.server.registry.access import ProjectAccess, project_access
from segmap.server.storage import LocalStorage, Storage
from segmap.server.web.auth import Principal


def collection_type_of(value: str | None) -> CollectionKind:
    """``RTSTRUCT`` or ``SEG`` (any case), else ``Unprocessable``."""
    text = (value or "").strip().upper()
    if text not in CollectionKind.__members__:
        raise Unprocessable(
            f"type must be RTSTRUCT or SEG (got {value!r}); say which kind of ROI collection "
            "the file is with ?type=RTSTRUCT or ?type=SEG"
        )
    return CollectionKind(text)


def find_by_label(db: Session, session: ImagingSession, label: str) -> RoiCollection | None:
    """The session's collection with this label (case-insensitive), if any."""
    return db.scalar(
        select(RoiCollection).where(
            RoiCollection.session_id == session.id, RoiCollection.label_key == name_key(label)
        )
    )


def list_collections(
    db: Session, principal: Principal | None, project_id: str, session_ref: str | int
) -> list[RoiCollection]:
    """The session's ROI collections by label."""
    access = project_access(db, principal, project_id)
    session = find_session(db, access, session_ref)
    return list(
        db.scalars(
            select(RoiCollection)
            .where(RoiCollection.session_id == session.id)
            .order_by(RoiCollection.label_key)
        )
    )


def get_collection(
    db: Session,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    label: str,
) -> RoiCollection:
    """One collection's row (label compared case-insensitively), for a reader."""
    access = project_access(db, principal, project_id)
    session = find_session(db, access, session_ref)
    found = find_by_label(db, session, label)
    if found is None:
        raise NotFound(f"session {session.label!r} has no ROI collection {label!r}")
    return found


def open_collection(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    label: str,
) -> tuple[RoiCollection, BinaryIO]:
    """A collection's row and an open handle on its bytes (the caller closes it).

    Re-reads the row when the file was replaced in between, so bytes match the row.
    """
    for _ in range(3):
        row = get_collection(db, principal, project_id, session_ref, label)
        try:
            return row, storage.open(row.storage_key)
        except FileNotFoundError:
            db.rollback()
    raise NotFound(f"the file of ROI collection {label!r} is missing from storage")


def collection_file(db: Session, storage: LocalStorage, collection: RoiCollection | int) -> Path:
    """The collection's file on local disk (no permission check; for jobs).

    The path stays valid until the collection is replaced (a replacement is a new file;
    the old one is deleted after the switch), so a job that may outlive a replacement
    should copy it first. Raises ``NotFound`` for an unknown id.
    """
    row = db.get(RoiCollection, collection) if isinstance(collection, int) else collection
    if row is None:
        raise NotFound(f"there is no ROI collection with id {collection}")
    return storage.local_path(row.storage_key)


def project_collections(db: Session, project_id: str) -> list[RoiCollection]:
    """Every ROI collection of a project, oldest session first (no permission check; jobs)."""
    return list(
        db.scalars(
            select(RoiCollection)
            .join(ImagingSession, ImagingSession.id == RoiCollection.session_id)
            .where(ImagingSession.project_id == project_id)
            .order_by(RoiCollection.session_id, RoiCollection.label_key)
        )
    )


def find_collection(db: Session, access: ProjectAccess, ref: str | int) -> RoiCollection:
    """A collection of the project by numeric id, or by ``SESSION/LABEL``.

    ``SESSION`` is a session's id or StudyInstanceUID; ``LABEL`` the collection's label.
    """
    text = str(ref).strip()
    found: RoiCollection | None = None
    if text.isdigit():
        found = db.get(RoiCollection, int(text))
        if found is not None:
            owner = db.get(ImagingSession, found.session_id)
            if owner is None or owner.project_id != access.project.id:
                found = None
    elif "/" in text:
        session_ref, label = text.split("/", 1)
        found = find_by_label(db, find_session(db, access, session_ref), label)
    if found is None:
        raise NotFound(
            f"project {access.project.id!r} has no ROI collection {text!r}; give its numeric "
            "id or SESSION/LABEL"
        )
    return found
