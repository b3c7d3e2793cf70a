"""The transaction of a DICOM upload: sessions, scans and instance rows, with their files.

Every file placed is deleted again when the transaction fails, so no row points at a
missing file and no file is left without its row. Races with a concurrent upload of the
same session, scan or instance are resolved through the unique constraints (savepoint,
read again).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.imaging.instance_check import IS_MAX, ImageHeader, RejectedFile
from segmap.server.db.imaging import ImagingSession, Instance, Scan
from segmap.server.dicomweb.index import index_instances
from segmap.server.dicomweb.index_entry import IndexEntry
from segmap.server.errors import Conflict
from segmap.server.imaging.lookup import scan_folder
from segmap.server.registry.access import ProjectAccess
from segmap.server.storage import Storage
from segmap.server.web.transfer import IncomingFile, Rejection

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


@dataclass
class Tally:
    """Instances of one scan newly stored and already stored."""

    added: int = 0
    already: int = 0


@dataclass
class Plan:
    """What an upload is doing: accepted files by (study, series), counters, refusals."""

    new: dict[tuple[str, str], list[tuple[IncomingFile, ImageHeader]]] = field(default_factory=dict)
    tallies: dict[int, Tally] = field(default_factory=dict)  # scan id -> counts
    rejected: list[Rejection] = field(default_factory=list)
    # RTSTRUCT/SEG files sent with the images: (file name, the refusal with its study).
    collections: list[tuple[str, RejectedFile]] = field(default_factory=list)
    files_seen: int = 0  # files and zip entries looked at so far (for the log)


def existing_instances(db: Session, project_id: str, uids: Iterable[str]) -> dict[str, Instance]:
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


def store_instances(
    db: Session,
    storage: Storage,
    access: ProjectAccess,
    accepted: list[tuple[IncomingFile, ImageHeader]],
    plan: Plan,
    index_entries: Mapping[str, IndexEntry] | None = None,
) -> list[SessionUpload]:
    """Place the accepted files and insert their rows in one transaction (committed).

    Sessions and scans are found or made; a repeat of a stored instance is counted, a
    clash refused into ``plan``. On any error every placed file is deleted again. The
    placed files' folders are flushed once each, before the commit. ``index_entries``
    (by SHA-256) are DICOMweb index entries the caller made already.
    """
    placed: list[str] = []
    touched: dict[int, Scan] = {}
    try:
        existing = existing_instances(
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
            _store_scan(db, storage, access, group, plan, touched, placed, index_entries)
        for scan in touched.values():
            _recount(db, scan)
        storage.sync_folders(placed)  # every rename durable before the rows are
        db.commit()
    except BaseException:
        db.rollback()
        for key in placed:
            storage.delete(key)
        raise
    return _result_sessions(touched, plan)


def _count_existing(
    db: Session,
    item: IncomingFile,
    header: ImageHeader,
    stored: Instance,
    plan: Plan,
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
        plan.tallies.setdefault(scan.id, Tally()).already += 1


def _store_scan(
    db: Session,
    storage: Storage,
    access: ProjectAccess,
    group: list[tuple[IncomingFile, ImageHeader]],
    plan: Plan,
    touched: dict[int, Scan],
    placed: list[str],
    index_entries: Mapping[str, IndexEntry] | None,
) -> None:
    first = group[0][1]
    session = _session_for(db, access, first)
    scan = _scan_for(db, session, first)
    touched[scan.id] = scan
    tally = plan.tallies.setdefault(scan.id, Tally())
    keys = []
    for item, _header in group:
        key = f"{scan_folder(scan.id)}/{uuid.uuid4().hex}.dcm"
        storage.commit(item.staged, key, sync=False)  # the folder is flushed before commit
        placed.append(key)
        keys.append(key)
    try:  # all rows in one flush; a clash with a concurrent upload is sorted out below
        with db.begin_nested():
            rows = [_row(access, scan, i, h, k) for (i, h), k in zip(group, keys, strict=True)]
            db.add_all(rows)
    except IntegrityError:
        rows = _insert_one_by_one(db, storage, access, scan, group, keys, plan, touched, placed)
    tally.added += len(rows)
    index_instances(db, storage, rows, scan, session, index_entries)  # same transaction


def _insert_one_by_one(
    db: Session,
    storage: Storage,
    access: ProjectAccess,
    scan: Scan,
    group: list[tuple[IncomingFile, ImageHeader]],
    keys: list[str],
    plan: Plan,
    touched: dict[int, Scan],
    placed: list[str],
) -> list[Instance]:
    rows = []
    for (item, header), key in zip(group, keys, strict=True):
        row = _row(access, scan, item, header, key)
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            # Another upload stored this instance a moment ago: treat it like a repeat.
            storage.delete(key)
            placed.remove(key)
            stored = existing_instances(db, access.project.id, [header.sop_instance_uid])
            if header.sop_instance_uid not in stored:
                raise
            _count_existing(db, item, header, stored[header.sop_instance_uid], plan, touched)
            continue
        rows.append(row)
    return rows


def _row(
    access: ProjectAccess, scan: Scan, item: IncomingFile, header: ImageHeader, key: str
) -> Instance:
    return Instance(
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
    total = db.scalar(
        select(func.coalesce(func.sum(Instance.frames), 0)).where(Instance.scan_id == scan.id)
    )
    # A count for display; kept within the 32-bit column (frames are each within it, so
    # only absurd sums of them could pass it).
    scan.slice_count = min(int(total or 0), IS_MAX)


def _result_sessions(touched: dict[int, Scan], plan: Plan) -> list[SessionUpload]:
    by_session: dict[int, SessionUpload] = {}
    for scan in sorted(touched.values(), key=lambda s: (s.session_id, s.id)):
        tally = plan.tallies.get(scan.id, Tally())
        entry = by_session.setdefault(scan.session_id, SessionUpload(scan.session, []))
        entry.scans.append(ScanUpload(scan, tally.added, tally.already))
    return list(by_session.values())
