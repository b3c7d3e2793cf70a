"""ROI collections: RTSTRUCT or SEG files drawn on a scan of a session.

An upload is checked from its header before it is stored: it must be the declared type,
reference a scan of the session (by SeriesInstanceUID, or failing that by the image
instances it names) and share that scan's frame of reference. Its region names (RTSTRUCT
ROI names, SEG segment labels) are kept for display and name matching.

Storage follows the model-file pattern: stream to staging, move to a fresh key, switch
the row in one transaction, delete the replaced object only after the commit. After a
collection is stored, ``segmap.server.services.jobs.on_collection_stored(db, principal,
collection)`` is called when that module exists, so automated models get their jobs.

Permissions: project owners and site admins upload; members and collaborators read and
download.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.annotations.info import read_annotation_info
from segmap.annotations.types import AnnotationInfo
from segmap.errors import AnnotationError
from segmap.server.auth import Principal
from segmap.server.db.base import utcnow
from segmap.server.db.imaging import COLLECTION_TYPES, ImagingSession, Instance, RoiCollection, Scan
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.services.access import ProjectAccess, project_access, require_manage
from segmap.server.services.imaging_dicom import RejectedFile, collection_region_names
from segmap.server.services.imaging_sessions import find_session, sorted_scans
from segmap.server.services.names import check_resource_name, name_key
from segmap.server.settings import DEFAULT_MAX_UPLOAD_BYTES
from segmap.server.storage import LocalStorage, StagedFile, Storage

log = logging.getLogger("segmap.server.imaging")

_LOOKUP_BATCH = 500


@dataclass(frozen=True)
class SavedCollection:
    """An uploaded collection and whether it was new (False: it replaced one)."""

    collection: RoiCollection
    created: bool


def collection_type_of(value: str | None) -> str:
    """``RTSTRUCT`` or ``SEG`` (any case), else ``Unprocessable``."""
    text = (value or "").strip().upper()
    if text not in COLLECTION_TYPES:
        raise Unprocessable(
            f"type must be RTSTRUCT or SEG (got {value!r}); say which kind of ROI collection "
            "the file is with ?type=RTSTRUCT or ?type=SEG"
        )
    return text


def _find(db: Session, session: ImagingSession, label: str) -> RoiCollection | None:
    return db.scalar(
        select(RoiCollection).where(
            RoiCollection.session_id == session.id, RoiCollection.label_key == name_key(label)
        )
    )


def _exists_error(session: ImagingSession, existing: RoiCollection) -> Conflict:
    return Conflict(
        f"session {session.label!r} already has an ROI collection {existing.label!r}; add "
        "overwrite=true to replace it, or choose another label"
    )


def prepare_collection_upload(
    db: Session,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    label: str,
    collection_type: str | None,
    overwrite: bool = False,
) -> tuple[ProjectAccess, ImagingSession]:
    """Check, before receiving any bytes, what can be checked without the file.

    Permission, session, label, type, and 409 when the label exists and ``overwrite`` is
    not set.
    """
    access = project_access(db, principal, project_id)
    require_manage(access, "upload ROI collections")
    session = find_session(db, access, session_ref)
    check_resource_name(label, "collection label")
    collection_type_of(collection_type)
    existing = _find(db, session, label)
    if existing is not None and not overwrite:
        raise _exists_error(session, existing)
    return access, session


def put_collection(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    label: str,
    collection_type: str | None,
    body: BinaryIO | Iterable[bytes] | bytes | Path,
    overwrite: bool = False,
    *,
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> SavedCollection:
    """Store an ROI collection from a file object, chunks, bytes or a local path (committed).

    201-style result (``created``) for a new label; with ``overwrite`` an existing one is
    replaced (``created`` False). Errors: 403 for readers, 404 unknown session, 409 label
    taken without ``overwrite``, 422 wrong type / unreadable file / references no scan of
    the session (naming the series it references) / other frame of reference.
    """
    prepare_collection_upload(
        db, principal, project_id, session_ref, label, collection_type, overwrite
    )
    db.rollback()  # no database lock while bytes are copied
    with storage.stage(max_bytes) as writer:
        if isinstance(body, Path):
            with open(body, "rb") as source:
                writer.write_from(source)
        else:
            writer.write_from(body)
        staged = writer.finish()
    return store_staged_collection(
        db, storage, principal, project_id, session_ref, label, collection_type, staged, overwrite
    )


def store_staged_collection(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    label: str,
    collection_type: str | None,
    staged: StagedFile,
    overwrite: bool = False,
) -> SavedCollection:
    """Validate and place a fully received collection (committed); consumes ``staged``.

    Then calls the jobs hook (see the module doc); a failing hook is logged, the stored
    collection stays.
    """
    placed: str | None = None
    try:
        access, session = prepare_collection_upload(
            db, principal, project_id, session_ref, label, collection_type, overwrite
        )
        kind = collection_type_of(collection_type)
        info = _annotation_info(staged.path, label, kind)
        scan = referenced_scan(db, session, info, label)
        _check_frame_of_reference(info, scan, label)
        names = _region_names(staged.path, kind, label)
        placed = f"sessions/{session.id}/collections/{uuid.uuid4().hex}.dcm"
        storage.commit(staged, placed)
        fields = {
            "scan_id": scan.id,
            "collection_type": kind,
            "sop_instance_uid": info.sop_instance_uid[:64],
            "referenced_series_uid": scan.series_instance_uid,
            "region_names": names,
            "size": staged.size,
            "sha256": staged.sha256,
            "storage_key": placed,
            "uploaded_by_id": access.principal.id,
        }
        row, created, old_key = _point_collection_at(db, session, label, overwrite, fields)
        db.commit()
    except BaseException:
        db.rollback()
        storage.discard(staged)
        if placed is not None:
            storage.delete(placed)
        raise
    if old_key is not None:
        storage.delete(old_key)
    _notify_jobs(db, access.principal, row)
    return SavedCollection(row, created)


def _annotation_info(path: Path, label: str, kind: str) -> AnnotationInfo:
    try:
        info = read_annotation_info(path)
    except AnnotationError as exc:
        message = str(exc).replace(str(path), f"the collection {label!r}")
        raise Unprocessable(message) from None
    if info.modality != kind:
        raise Unprocessable(
            f"the collection {label!r} was sent as type={kind} but the file is "
            f"{'an' if info.modality == 'RTSTRUCT' else 'a'} {info.modality}; send it with "
            f"?type={info.modality}"
        )
    return info


def _region_names(path: Path, kind: str, label: str) -> list[str]:
    try:
        return collection_region_names(path, kind)
    except RejectedFile as exc:
        raise Unprocessable(f"the collection {label!r}: {exc.reason}") from None


def referenced_scan(
    db: Session, session: ImagingSession, info: AnnotationInfo, label: str = ""
) -> Scan:
    """The scan of ``session`` the annotation references; ``Unprocessable`` naming it if none.

    By ReferencedSeriesInstanceUID first; an annotation that lists no series (or only
    others) is matched by the image SOPInstanceUIDs it names (the scan holding most).
    """
    scans = sorted_scans(session)
    by_series = {s.series_instance_uid: s for s in scans}
    for uid in info.referenced_series_uids:
        if uid in by_series:
            return by_series[uid]
    by_instances = _scan_by_instances(db, scans, info.referenced_sop_instance_uids)
    if by_instances is not None:
        return by_instances
    raise Unprocessable(_no_scan_message(session, scans, info, label))


def _scan_by_instances(db: Session, scans: list[Scan], uids: tuple[str, ...]) -> Scan | None:
    if not scans or not uids:
        return None
    counts: dict[int, int] = {}
    ids = [s.id for s in scans]
    wanted = list(uids)
    for start in range(0, len(wanted), _LOOKUP_BATCH):
        rows = db.execute(
            select(Instance.scan_id, func.count())
            .where(
                Instance.scan_id.in_(ids),
                Instance.sop_instance_uid.in_(wanted[start : start + _LOOKUP_BATCH]),
            )
            .group_by(Instance.scan_id)
        ).all()
        for scan_id, n in rows:
            counts[scan_id] = counts.get(scan_id, 0) + int(n)
    if not counts:
        return None
    best = max(counts, key=lambda sid: (counts[sid], -sid))
    return next(s for s in scans if s.id == best)


def _no_scan_message(
    session: ImagingSession, scans: list[Scan], info: AnnotationInfo, label: str
) -> str:
    what = f"the {info.modality} {label!r}" if label else f"the {info.modality}"
    if info.referenced_series_uids:
        ref_text = f"references image series {', '.join(info.referenced_series_uids)}"
    elif info.referenced_sop_instance_uids:
        ref_text = (
            f"references {len(info.referenced_sop_instance_uids)} image instances (e.g. "
            f"{info.referenced_sop_instance_uids[0]}) but no series"
        )
    else:
        ref_text = "references no image series at all"
    listed = ", ".join(f"{s.series_instance_uid} ({s.modality or '?'})" for s in scans)
    have = f"its scans are {listed}" if scans else "it has no scans yet"
    return (
        f"{what} {ref_text}, which is not a scan of session {session.label!r} ({have}); "
        "upload the image series it was drawn on into this session first, or put the "
        "collection on the session that holds that series"
    )


def _check_frame_of_reference(info: AnnotationInfo, scan: Scan, label: str) -> None:
    declared = info.frame_of_reference_uids or (
        (info.frame_of_reference_uid,) if info.frame_of_reference_uid else ()
    )
    if not scan.frame_of_reference_uid or not declared:
        return
    if scan.frame_of_reference_uid in declared:
        return
    raise Unprocessable(
        f"the collection {label!r} is drawn in frame of reference {', '.join(declared)}, but "
        f"the scan it references ({scan.series_instance_uid}) is in frame of reference "
        f"{scan.frame_of_reference_uid}; their coordinates cannot be compared. Export the "
        "collection again from that scan"
    )


def _point_collection_at(
    db: Session,
    session: ImagingSession,
    label: str,
    overwrite: bool,
    fields: dict[str, object],
) -> tuple[RoiCollection, bool, str | None]:
    """Insert the row or (with ``overwrite``) switch the existing one; returns the old key."""
    for _ in range(3):
        existing = db.scalar(
            select(RoiCollection)
            .where(
                RoiCollection.session_id == session.id,
                RoiCollection.label_key == name_key(label),
            )
            .with_for_update()
        )
        if existing is not None:
            if not overwrite:
                raise _exists_error(session, existing)
            old_key = existing.storage_key
            existing.label = label
            for key, value in fields.items():
                setattr(existing, key, value)
            existing.uploaded_at = utcnow()
            return existing, False, old_key
        row = RoiCollection(session_id=session.id, label=label, label_key=name_key(label), **fields)
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            continue  # a concurrent upload created it first: apply the overwrite rule
        return row, True, None
    raise Conflict(f"collection {label!r} is being uploaded by several requests at once; retry")


def _notify_jobs(db: Session, principal: Principal, collection: RoiCollection) -> None:
    # Imported here: the jobs service itself lists collections through this module.
    from segmap.server.services.jobs import on_collection_stored

    try:
        on_collection_stored(db, principal, collection)
    except Exception:
        db.rollback()
        log.exception(
            "the jobs hook failed for ROI collection %s (id %s); the collection is stored",
            collection.label,
            collection.id,
        )


# --------------------------------------------------------------------------- reading


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
    found = _find(db, session, label)
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
