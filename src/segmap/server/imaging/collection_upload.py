"""Uploading an ROI collection: an RTSTRUCT or SEG file drawn on a scan of a session.

An upload is checked from its header before it is stored: it must be the declared type,
reference a scan of the session (by SeriesInstanceUID, or failing that by the image
instances it names) and have every region in that scan's frame of reference
(``references``). Its region names (RTSTRUCT ROI names, SEG segment labels) are kept for
display and name matching.

Storage follows the model-file pattern: stream to staging, move to a fresh key, switch
the row in one transaction, delete the replaced object only after the commit. Then the
app's :class:`~segmap.server.imaging.events.ImagingEvents` hear of it (jobs queues the
automated models' conversions).

Permissions: project owners and site admins upload; members and collaborators read and
download.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.annotations.info import read_annotation_info
from segmap.annotations.types import AnnotationInfo
from segmap.errors import AnnotationError
from segmap.imaging.dicom_probe import check_inflated_size, has_dicom_marker, looks_like_zip
from segmap.imaging.instance_check import RejectedFile
from segmap.imaging.sop_classes import CollectionKind
from segmap.imaging.uids import MAX_UID_LENGTH, describe_uid, uid_problem
from segmap.server.db.base import utcnow
from segmap.server.db.imaging import ImagingSession, RoiCollection, StoredVia
from segmap.server.dicomweb.index import index_collection
from segmap.server.errors import Conflict, Unprocessable
from segmap.server.imaging.collections import collection_type_of, find_by_label
from segmap.server.imaging.events import ImagingEvents
from segmap.server.imaging.lookup import find_session
from segmap.server.imaging.references import check_frame_of_reference, referenced_scan
from segmap.server.names import check_resource_name, name_key
from segmap.server.registry.access import ProjectAccess, project_access, require_manage
from segmap.server.settings import DEFAULT_MAX_UPLOAD_BYTES
from segmap.server.storage import StagedFile, Storage
from segmap.server.upload_limits import UploadLimits
from segmap.server.web.auth import Principal


@dataclass(frozen=True)
class SavedCollection:
    """An uploaded collection and whether it was new (False: it replaced one)."""

    collection: RoiCollection
    created: bool


def _exists_error(session: ImagingSession, existing: RoiCollection) -> Conflict:
    return Conflict(
        f"session {session.label!r} already has an ROI collection {existing.label!r}; add "
        "overwrite=true to replace it, or choose another label"
    )


def collection_body_sniff(label: str) -> Callable[[bytes], None]:
    """For ``stage_body``: refuse (422), from its first bytes, a collection body that is a
    zip or not DICOM, before the rest of it is written."""

    def sniff(first: bytes) -> None:
        if looks_like_zip(first):
            raise Unprocessable(
                f"the collection {label!r} was sent as a zip; send the RTSTRUCT or SEG file "
                "itself as the body"
            )
        if not has_dicom_marker(first):
            raise Unprocessable(
                f"the collection {label!r} is not a DICOM file (no 'DICM' marker after the "
                "128-byte preamble); send the RTSTRUCT or SEG file (DICOM Part 10) as the body"
            )

    return sniff


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
    existing = find_by_label(db, session, label)
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
    events: ImagingEvents,
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
        db,
        storage,
        principal,
        project_id,
        session_ref,
        label,
        collection_type,
        staged,
        overwrite,
        events=events,
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
    *,
    events: ImagingEvents,
    limits: UploadLimits | None = None,
    stored_via: StoredVia = StoredVia.UPLOAD,
) -> SavedCollection:
    """Validate and place a fully received collection (committed); consumes ``staged``.

    Then tells ``events`` (see the module doc); a failing listener is logged, the stored
    collection stays. ``limits`` bound the header read (a deflated data set's inflated
    size); the defaults when None. UIDs that break the UID grammar are refused (422).
    ``stored_via`` records the route (STOW-RS passes its own); the caller is recorded as
    who stored it.
    """
    placed: str | None = None
    try:
        access, session = prepare_collection_upload(
            db, principal, project_id, session_ref, label, collection_type, overwrite
        )
        kind = collection_type_of(collection_type)
        bounds = limits or UploadLimits.for_upload_limit(DEFAULT_MAX_UPLOAD_BYTES)
        info = _annotation_info(staged.path, label, kind, bounds)
        _check_uids(info, label)
        scan = referenced_scan(db, session, info, label)
        check_frame_of_reference(info, scan, label)
        placed = f"sessions/{session.id}/collections/{uuid.uuid4().hex}.dcm"
        storage.commit(staged, placed)
        fields: dict[str, object] = {
            "scan_id": scan.id,
            "collection_type": kind.value,
            "sop_instance_uid": info.sop_instance_uid,
            "referenced_series_uid": scan.series_instance_uid,
            "region_names": list(info.region_names),
            "size": staged.size,
            "sha256": staged.sha256,
            "storage_key": placed,
            "uploaded_by_id": access.principal.id,
            "stored_via": stored_via.value,
        }
        row, created, old_key = _point_collection_at(db, session, label, overwrite, fields)
        index_collection(db, storage, row)  # DICOMweb index, same transaction
        db.commit()
    except BaseException:
        db.rollback()
        storage.discard(staged)
        if placed is not None:
            storage.delete(placed)
        raise
    if old_key is not None:
        storage.delete(old_key)
    events.collection_stored(db, access.principal, row)
    return SavedCollection(row, created)


def _annotation_info(
    path: Path, label: str, kind: CollectionKind, limits: UploadLimits
) -> AnnotationInfo:
    try:
        # pydicom inflates a deflated data set in memory whole: bound it first.
        size = path.stat().st_size
        cap = max(limits.ratio_grace_bytes, limits.max_ratio * size)
        check_inflated_size(path, min(cap, limits.max_file_bytes))
        info = read_annotation_info(path)
    except RejectedFile as exc:
        raise Unprocessable(f"the collection {label!r}: {exc.reason}") from None
    except AnnotationError as exc:
        message = str(exc).replace(str(path), f"the collection {label!r}")
        raise Unprocessable(message) from None
    if info.modality != kind:
        found = CollectionKind(info.modality)
        raise Unprocessable(
            f"the collection {label!r} was sent as type={kind} but the file is "
            f"{found.article} {found}; send it with ?type={found}"
        )
    return info


def _check_uids(info: AnnotationInfo, label: str) -> None:
    """``Unprocessable`` naming the attribute when a UID the collection is stored or
    matched under breaks the UID grammar (PS3.5 9.1)."""
    frames = info.frame_of_reference_uids or (info.frame_of_reference_uid or "",)
    named = [
        ("SOPInstanceUID", info.sop_instance_uid),
        ("SeriesInstanceUID", info.series_instance_uid),
        ("StudyInstanceUID", info.study_instance_uid),
        ("SOPClassUID", info.sop_class_uid),
        *(("FrameOfReferenceUID", uid) for uid in frames),
    ]
    for keyword, value in named:
        problem = uid_problem(value) if value else None
        if keyword == "SOPInstanceUID" and not value:
            problem = "is missing"
        if problem is not None:
            raise Unprocessable(
                f"the collection {label!r}: its {keyword} {describe_uid(value)} is not a "
                f"DICOM UID: it {problem} (PS3.5 9.1: digits in components separated by "
                f"dots, at most {MAX_UID_LENGTH} characters); fix the file's UIDs or export "
                "it again"
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
