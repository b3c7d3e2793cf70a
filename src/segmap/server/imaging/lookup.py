"""Finding and listing a project's imaging sessions and scans, and the files of a scan.

``{session}`` and ``{scan}`` references are a numeric id or the DICOM UID
(StudyInstanceUID, SeriesInstanceUID). Functions with a ``principal`` check that the
caller may read the project; ``scan_files`` is for jobs (no check).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from segmap.server.db.imaging import ImagingSession, Instance, Scan
from segmap.server.errors import NotFound
from segmap.server.registry.access import ProjectAccess, project_access
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal


def find_session(db: Session, access: ProjectAccess, ref: str | int) -> ImagingSession:
    """A session of the project by numeric id or StudyInstanceUID; ``NotFound`` otherwise."""
    text = str(ref).strip()
    found = None
    if text.isdigit():
        found = db.get(ImagingSession, int(text))
        if found is not None and found.project_id != access.project.id:
            found = None
    if found is None:
        found = db.scalar(
            select(ImagingSession).where(
                ImagingSession.project_id == access.project.id,
                ImagingSession.study_instance_uid == text,
            )
        )
    if found is None:
        raise NotFound(f"project {access.project.id!r} has no session {text!r}")
    return found


def find_scan(db: Session, session: ImagingSession, ref: str | int) -> Scan:
    """A scan of the session by numeric id or SeriesInstanceUID; ``NotFound`` otherwise."""
    text = str(ref).strip()
    found = None
    if text.isdigit():
        found = db.get(Scan, int(text))
        if found is not None and found.session_id != session.id:
            found = None
    if found is None:
        found = db.scalar(
            select(Scan).where(Scan.session_id == session.id, Scan.series_instance_uid == text)
        )
    if found is None:
        raise NotFound(f"session {session.label!r} has no scan {text!r}")
    return found


def list_sessions(
    db: Session, principal: Principal | None, project_id: str
) -> list[ImagingSession]:
    """The project's sessions in upload order, each with its scans loaded."""
    access = project_access(db, principal, project_id)
    return list(
        db.scalars(
            select(ImagingSession)
            .where(ImagingSession.project_id == access.project.id)
            .options(selectinload(ImagingSession.scans))
            .order_by(ImagingSession.id)
        )
    )


def get_session(
    db: Session, principal: Principal | None, project_id: str, session_ref: str | int
) -> ImagingSession:
    """One session with its scans and ROI collections loaded (members and collaborators too)."""
    access = project_access(db, principal, project_id)
    found = find_session(db, access, session_ref)
    return db.scalars(
        select(ImagingSession)
        .where(ImagingSession.id == found.id)
        .options(selectinload(ImagingSession.scans), selectinload(ImagingSession.collections))
    ).one()


def get_scan(
    db: Session,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    scan_ref: str | int,
) -> Scan:
    """One scan of a session, for a reader."""
    access = project_access(db, principal, project_id)
    return find_scan(db, find_session(db, access, session_ref), scan_ref)


def sorted_scans(session: ImagingSession) -> list[Scan]:
    """The session's scans by series number (unnumbered last), then upload order."""
    return sorted(
        session.scans,
        key=lambda s: (s.series_number is None, s.series_number or 0, s.id),
    )


def scan_files(db: Session, storage: LocalStorage, scan: Scan | int) -> list[Path]:
    """The scan's instance files on local disk, by InstanceNumber (no permission check).

    For jobs: every file lies in one folder (``paths[0].parent``) that holds this scan's
    instances and nothing else, so it can be given to ``segmap.pipeline.convert`` as the
    image folder. The files are read-only and stay in place (instances are never
    replaced). Empty when the scan has no instances.
    """
    scan_id = scan if isinstance(scan, int) else scan.id
    rows = db.execute(
        select(Instance.storage_key, Instance.instance_number, Instance.sop_instance_uid).where(
            Instance.scan_id == scan_id
        )
    ).all()
    rows = sorted(rows, key=lambda r: (r[1] is None, r[1] or 0, r[2]))
    return [storage.local_path(key) for key, _n, _uid in rows]


def scan_folder(scan_id: int) -> str:
    """Storage key prefix under which a scan's instance files live."""
    return f"scans/{scan_id}/dicom"
