"""Imaging sessions and their scans: DICOM upload, listing, and the files of a scan.

Upload order, so that no failure leaves a row without its file: every file is received
into staging and its header read outside any database transaction; then, in one
transaction, sessions and scans are found or created, each new instance is moved to its
storage key and its row inserted; on any error the placed files are deleted again.

Duplicates: an instance is identified by its SOPInstanceUID within the project. The same
UID with the same bytes (SHA-256) is "already stored" and changes nothing. The same UID
with *different* bytes is refused with a reason and the stored copy is kept: a UID names
one object, so two different files under one UID mean one of them was edited or
re-encoded, and silently swapping it would change scans that masks were made from.

Permissions: project owners and site admins upload; members and collaborators read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.server.auth import Principal
from segmap.server.db.imaging import ImagingSession, Instance, RoiCollection, Scan
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.services.access import (
    ProjectAccess,
    project_access,
    require_manage,
)
from segmap.server.services.imaging_dicom import ImageHeader, RejectedFile, read_image_header
from segmap.server.services.imaging_upload import (
    IncomingFile,
    Rejection,
    UploadLimits,
    expand,
    local_files,
    stage_path,
)
from segmap.server.settings import DEFAULT_MAX_UPLOAD_BYTES
from segmap.server.storage import LocalStorage, Storage

_LOOKUP_BATCH = 500  # UIDs per IN (...) query, well under every backend's parameter limit


@dataclass(frozen=True)
class ScanUpload:
    """A scan touched by an upload: instances newly stored and ones it already had."""

    scan: Scan
    added: int
    already_stored: int


@dataclass(frozen=True)
class SessionUpload:
    """A session touched by an upload, with its scans touched."""

    session: ImagingSession
    scans: list[ScanUpload]


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: sessions and scans it touched, and the files it refused."""

    sessions: list[SessionUpload]
    rejected: list[Rejection]

    @property
    def added(self) -> int:
        """Instances newly stored."""
        return sum(s.added for entry in self.sessions for s in entry.scans)

    @property
    def accepted(self) -> int:
        """Instances stored now or before (not refused)."""
        return sum(s.added + s.already_stored for entry in self.sessions for s in entry.scans)


@dataclass
class _Tally:
    added: int = 0
    already: int = 0


@dataclass
class _Plan:
    """Accepted files by (study, series), and the outcome counters."""

    new: dict[tuple[str, str], list[tuple[IncomingFile, ImageHeader]]] = field(
        default_factory=dict
    )
    tallies: dict[int, _Tally] = field(default_factory=dict)  # scan id -> counts
    rejected: list[Rejection] = field(default_factory=list)
    # RTSTRUCT/SEG files sent with the images: (file name, the refusal with its study).
    collections: list[tuple[str, RejectedFile]] = field(default_factory=list)


# --------------------------------------------------------------------------- lookups


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


# --------------------------------------------------------------------------- files of a scan


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


# --------------------------------------------------------------------------- upload


def check_session_upload(
    db: Session, principal: Principal | None, project_id: str
) -> ProjectAccess:
    """Raise before any byte is received when the caller may not upload into the project."""
    access = project_access(db, principal, project_id)
    require_manage(access, "upload imaging sessions")
    return access


def upload_dicom(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    files_or_zip: Sequence[IncomingFile | Path],
    *,
    limits: UploadLimits | None = None,
    rejected: Sequence[Rejection] = (),
) -> UploadResult:
    """Store DICOM image files into the project's sessions and scans (committed).

    ``files_or_zip`` holds files already received into staging (``IncomingFile``, owned
    by this function from now on: placed or discarded) and/or local paths (files or
    folders, copied). Zip archives among them are unpacked. Files are grouped into
    sessions by StudyInstanceUID and scans by SeriesInstanceUID. A file that is not DICOM,
    is damaged, is not an image (RTSTRUCT and SEG files go through ``put_collection``) or
    clashes with a stored instance is refused with a reason; the rest is kept.
    ``rejected`` carries files refused before this call (e.g. too large) into the result.
    """
    staged: list[IncomingFile] = [f for f in files_or_zip if isinstance(f, IncomingFile)]
    try:
        access = check_session_upload(db, principal, project_id)
        limits = limits or UploadLimits.for_upload_limit(DEFAULT_MAX_UPLOAD_BYTES)
        db.rollback()  # hold no database lock while files are copied and read
        paths = [Path(f) for f in files_or_zip if not isinstance(f, IncomingFile)]
        for path in local_files(paths):
            staged.append(IncomingFile(str(path), stage_path(storage, path, limits.max_file_bytes)))
        plan = _Plan(rejected=list(rejected))
        accepted = _classify(storage, staged, limits, plan)
        _drop_duplicates_in_upload(accepted, plan)
        result = _store(db, storage, access, accepted, plan)
    finally:
        for item in staged:
            storage.discard(item.staged)  # no-op for files already moved into storage
    return result


def _classify(
    storage: Storage, owned: list[IncomingFile], limits: UploadLimits, plan: _Plan
) -> list[tuple[IncomingFile, ImageHeader]]:
    """Read every file's header; refusals go to ``plan``. Unpacked zip entries are
    appended to ``owned`` so the caller discards whatever is not placed."""
    accepted: list[tuple[IncomingFile, ImageHeader]] = []
    for item in list(expand(storage, list(owned), limits)):
        if isinstance(item, Rejection):
            plan.rejected.append(item)
            continue
        if item not in owned:
            owned.append(item)
        try:
            accepted.append((item, read_image_header(item.staged.path)))
        except RejectedFile as exc:
            if exc.collection_type:
                plan.collections.append((item.name, exc))
            else:
                plan.rejected.append(Rejection(item.name, exc.reason))
    return accepted


def _drop_duplicates_in_upload(
    accepted: list[tuple[IncomingFile, ImageHeader]], plan: _Plan
) -> None:
    first: dict[str, tuple[IncomingFile, ImageHeader]] = {}
    for item, header in accepted:
        seen = first.get(header.sop_instance_uid)
        if seen is None:
            first[header.sop_instance_uid] = (item, header)
        elif seen[0].staged.sha256 != item.staged.sha256:
            plan.rejected.append(
                Rejection(
                    item.name,
                    f"{seen[0].name} in this upload has the same SOPInstanceUID "
                    f"{header.sop_instance_uid} but different content; a UID names one "
                    "object, so only the first was kept",
                )
            )
    accepted[:] = list(first.values())


def _existing_instances(
    db: Session, project_id: str, uids: Iterable[str]
) -> dict[str, Instance]:
    wanted = list(uids)
    found: dict[str, Instance] = {}
    for start in range(0, len(wanted), _LOOKUP_BATCH):
        batch = wanted[start : start + _LOOKUP_BATCH]
        for row in db.scalars(
            select(Instance).where(
                Instance.project_id == project_id, Instance.sop_instance_uid.in_(batch)
            )
        ):
            found[row.sop_instance_uid] = row
    return found


def _store(
    db: Session,
    storage: Storage,
    access: ProjectAccess,
    accepted: list[tuple[IncomingFile, ImageHeader]],
    plan: _Plan,
) -> UploadResult:
    placed: list[str] = []
    touched: dict[int, Scan] = {}
    try:
        existing = _existing_instances(
            db, access.project.id, (h.sop_instance_uid for _i, h in accepted)
        )
        for item, header in accepted:
            stored = existing.get(header.sop_instance_uid)
            if stored is not None:
                _count_existing(db, item, header, stored, plan, touched)
            else:
                plan.new.setdefault(
                    (header.study_instance_uid, header.series_instance_uid), []
                ).append((item, header))
        for group in plan.new.values():
            _store_scan(db, storage, access, group, plan, touched, placed)
        for scan in touched.values():
            _recount(db, scan)
        db.commit()
    except BaseException:
        db.rollback()
        for key in placed:
            storage.delete(key)
        raise
    return UploadResult(_result_sessions(touched, plan), _explain_collections(db, access, plan))


def _count_existing(
    db: Session,
    item: IncomingFile,
    header: ImageHeader,
    stored: Instance,
    plan: _Plan,
    touched: dict[int, Scan],
) -> None:
    if stored.sha256 != item.staged.sha256:
        scan = db.get(Scan, stored.scan_id)
        where = f"scan {scan.series_instance_uid}" if scan is not None else "this project"
        plan.rejected.append(
            Rejection(
                item.name,
                f"an instance with SOPInstanceUID {header.sop_instance_uid} is already stored "
                f"in {where} with different content (SHA-256 {stored.sha256[:12]}…); the "
                "stored one was kept. A UID names one object: give an edited file a new UID",
            )
        )
        return
    scan = touched.get(stored.scan_id) or db.get(Scan, stored.scan_id)
    if scan is not None:
        touched[scan.id] = scan
        plan.tallies.setdefault(scan.id, _Tally()).already += 1


def _store_scan(
    db: Session,
    storage: Storage,
    access: ProjectAccess,
    group: list[tuple[IncomingFile, ImageHeader]],
    plan: _Plan,
    touched: dict[int, Scan],
    placed: list[str],
) -> None:
    first = group[0][1]
    session = _session_for(db, access, first)
    scan = _scan_for(db, session, first)
    touched[scan.id] = scan
    tally = plan.tallies.setdefault(scan.id, _Tally())
    for item, header in group:
        key = f"{scan_folder(scan.id)}/{uuid.uuid4().hex}.dcm"
        storage.commit(item.staged, key)
        placed.append(key)
        row = Instance(
            project_id=access.project.id,
            scan_id=scan.id,
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            instance_number=header.instance_number,
            frames=header.frames,
            size=item.staged.size,
            sha256=item.staged.sha256,
            storage_key=key,
            uploaded_by_id=access.principal.id,
        )
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            # Another upload stored this instance a moment ago: treat it like a repeat.
            storage.delete(key)
            placed.remove(key)
            stored = _existing_instances(db, access.project.id, [header.sop_instance_uid])
            if header.sop_instance_uid not in stored:
                raise
            _count_existing(db, item, header, stored[header.sop_instance_uid], plan, touched)
            continue
        tally.added += 1


def _session_label(header: ImageHeader) -> str:
    parts = [header.patient_id, header.study_date.strftime("%Y%m%d") if header.study_date else ""]
    label = "_".join(p for p in parts if p)
    return (label or header.study_description or header.study_instance_uid)[:255]


def _session_for(db: Session, access: ProjectAccess, header: ImageHeader) -> ImagingSession:
    for _ in range(2):
        found = db.scalar(
            select(ImagingSession).where(
                ImagingSession.project_id == access.project.id,
                ImagingSession.study_instance_uid == header.study_instance_uid,
            )
        )
        if found is not None:
            _fill_session(found, header)
            return found
        session = ImagingSession(
            project_id=access.project.id,
            study_instance_uid=header.study_instance_uid,
            label=_session_label(header),
            subject=header.patient_id,
            study_date=header.study_date,
            study_description=header.study_description,
            created_by_id=access.principal.id,
        )
        try:
            with db.begin_nested():
                db.add(session)
        except IntegrityError:
            continue  # created by a concurrent upload: read it on the next pass
        return session
    raise Conflict("the session is being created by another upload; retry")


def _fill_session(session: ImagingSession, header: ImageHeader) -> None:
    """Fill facts an earlier upload lacked (never overwrite what is known)."""
    if not session.subject and header.patient_id:
        session.subject = header.patient_id
    if session.study_date is None and header.study_date is not None:
        session.study_date = header.study_date
    if not session.study_description and header.study_description:
        session.study_description = header.study_description


def _scan_for(db: Session, session: ImagingSession, header: ImageHeader) -> Scan:
    for _ in range(2):
        found = db.scalar(
            select(Scan).where(
                Scan.session_id == session.id,
                Scan.series_instance_uid == header.series_instance_uid,
            )
        )
        if found is not None:
            if found.frame_of_reference_uid is None and header.frame_of_reference_uid:
                found.frame_of_reference_uid = header.frame_of_reference_uid
            return found
        scan = Scan(
            session_id=session.id,
            series_instance_uid=header.series_instance_uid,
            modality=header.modality,
            description=header.series_description,
            series_number=header.series_number,
            frame_of_reference_uid=header.frame_of_reference_uid,
            slice_count=0,
        )
        try:
            with db.begin_nested():
                db.add(scan)
        except IntegrityError:
            continue
        return scan
    raise Conflict("the scan is being created by another upload; retry")


def _recount(db: Session, scan: Scan) -> None:
    db.flush()
    total = db.scalar(select(func.coalesce(func.sum(Instance.frames), 0)).where(
        Instance.scan_id == scan.id
    ))
    scan.slice_count = int(total or 0)


def _result_sessions(touched: dict[int, Scan], plan: _Plan) -> list[SessionUpload]:
    by_session: dict[int, SessionUpload] = {}
    for scan in sorted(touched.values(), key=lambda s: (s.session_id, s.id)):
        tally = plan.tallies.get(scan.id, _Tally())
        entry = by_session.setdefault(scan.session_id, SessionUpload(scan.session, []))
        entry.scans.append(ScanUpload(scan, tally.added, tally.already))
    return list(by_session.values())


def _explain_collections(
    db: Session, access: ProjectAccess, plan: _Plan
) -> list[Rejection]:
    """Refusals, with the exact collection upload to use for each RTSTRUCT/SEG sent here."""
    out = list(plan.rejected)
    project = quote(access.project.id, safe="")
    for name, exc in plan.collections:
        session = db.scalar(
            select(ImagingSession.id).where(
                ImagingSession.project_id == access.project.id,
                ImagingSession.study_instance_uid == exc.study_instance_uid,
            )
        )
        target = str(session) if session is not None else "{session}"
        after = "" if session is not None else " once the images it was drawn on are uploaded"
        out.append(
            Rejection(
                name,
                f"{exc.reason}: PUT /api/v1/projects/{project}/sessions/{target}/collections/"
                f"{{label}}?type={exc.collection_type} with the file as the body{after}, or "
                "Upload ROI Collection on the session page",
            )
        )
    return out


def collections_of_scan(db: Session, scan: Scan) -> list[RoiCollection]:
    """ROI collections drawn on a scan (no permission check)."""
    return list(db.scalars(select(RoiCollection).where(RoiCollection.scan_id == scan.id)))


def require_nonempty(result: UploadResult) -> UploadResult:
    """``Unprocessable`` (with the rejections) when an upload stored nothing at all."""
    if result.accepted == 0:
        reasons = "; ".join(f"{r.file}: {r.reason}" for r in result.rejected[:5])
        raise Unprocessable(
            "no file of the upload was stored" + (f": {reasons}" if reasons else ""),
            sessions=[],
            rejected=[{"file": r.file, "reason": r.reason} for r in result.rejected],
        )
    return result
