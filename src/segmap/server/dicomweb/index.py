"""Filling the DICOMweb index (``segmap.server.db.dicomweb``) when an instance is stored.

:func:`index_instance` is called by the image upload's transaction for each new image
instance, :func:`index_collection` by the ROI collection upload for its file (RTSTRUCT
and SEG are instances of a series of their own). Both read the stored file once for its
header (pydicom, large values deferred) and once for its frame layout
(:func:`segmap.imaging.frame_index.index_frames`), and add rows in the caller's
transaction, so the index commits or rolls back with the upload itself.
:func:`backfill` indexes what was stored before the index existed; the service runs it
at start-up.

Study and series rows take their attributes from the first instance indexed into them,
as sessions do. An instance whose SOPInstanceUID is already indexed in the project is
left out (logged): a UID names one object.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.imaging.frame_index import FrameIndexError, NoPixelData, index_frames_of
from segmap.pipeline.convert import SEG_NAME as DERIVED_SEG_NAME
from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.db.engine import Database
from segmap.server.db.imaging import DerivedFolder, ImagingSession, Instance, RoiCollection, Scan
from segmap.server.dicomweb.columns import level_values
from segmap.server.dicomweb.dicomjson import BULK_DATA_THRESHOLD, level_record
from segmap.server.dicomweb.levels import Level
from segmap.server.dicomweb.stored_metadata import metadata_text
from segmap.server.storage import Storage

log = logging.getLogger("segmap.server.dicomweb")

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_BACKFILL_BATCH = 200


def index_instance(
    db: Session, storage: Storage, instance: Instance, scan: Scan, session: ImagingSession
) -> None:
    """Index a stored image instance (its row flushed, its file placed); no commit."""
    if db.scalar(select(DicomwebInstance.id).where(DicomwebInstance.instance_id == instance.id)):
        return
    _guarded(
        db,
        storage,
        session=session,
        scan_id=scan.id,
        storage_key=instance.storage_key,
        size=instance.size,
        owner={"instance_id": instance.id},
    )


def index_collection(db: Session, storage: Storage, collection: RoiCollection) -> None:
    """Index a stored ROI collection's file, replacing what its previous file had; no commit.

    Called after the collection's row points at its new file (a new collection, or an
    overwrite of one).
    """
    owner = {"collection_id": collection.id}
    _forget(db, DicomwebInstance.collection_id == collection.id)
    session = db.get(ImagingSession, collection.session_id)
    if session is not None:
        _guarded(
            db,
            storage,
            session=session,
            scan_id=None,
            storage_key=collection.storage_key,
            size=collection.size,
            owner=owner,
        )


def index_derived_seg(
    db: Session, storage: Storage, folder: DerivedFolder, session: ImagingSession
) -> None:
    """Index the ``seg.dcm`` of a scan's derived folder (the conversion's mask as a DICOM
    SEG), replacing what the folder's previous version had; no commit. A folder without
    one (a mask-only conversion) leaves nothing indexed."""
    owner = {"derived_folder_id": folder.id}
    _forget(db, DicomwebInstance.derived_folder_id == folder.id)
    seg = next((f for f in folder.files if f.name == DERIVED_SEG_NAME), None)
    if seg is not None:
        _guarded(
            db,
            storage,
            session=session,
            scan_id=None,
            storage_key=seg.storage_key,
            size=seg.size,
            owner=owner,
        )


def _forget(db: Session, mine: ColumnElement[bool]) -> None:
    """Drop the indexed instances ``mine`` selects, and their series when emptied."""
    db.flush()
    old_series = db.scalars(select(DicomwebInstance.series_id).where(mine)).all()
    db.execute(delete(DicomwebInstance).where(mine))
    for series_id in old_series:
        _drop_if_empty(db, series_id)


def _guarded(db: Session, storage: Storage, *, storage_key: str, **fields: Any) -> None:
    """Index one file in a savepoint; a failure is logged and never fails the upload
    (the instance is stored; :func:`backfill` tries again at the next start)."""
    try:
        with db.begin_nested(), storage.open(storage_key) as fp:
            _index_file(db, fp, storage_key=storage_key, **fields)
    except Exception:
        log.exception("could not index %s for DICOMweb; it is stored", storage_key)


def _index_file(
    db: Session,
    fp: BinaryIO,
    *,
    session: ImagingSession,
    scan_id: int | None,
    storage_key: str,
    size: int,
    owner: dict[str, int],
) -> None:
    ds = pydicom.dcmread(fp, defer_size=BULK_DATA_THRESHOLD)
    sop_uid = str(ds.get("SOPInstanceUID", ""))
    project_id = session.project_id
    taken = db.scalar(
        select(DicomwebInstance.id).where(
            DicomwebInstance.project_id == project_id, DicomwebInstance.sop_instance_uid == sop_uid
        )
    )
    if taken is not None:
        log.warning("SOPInstanceUID %s is already indexed in project %s", sop_uid, project_id)
        return
    _study_row(db, session, ds)
    series = _series_row(db, session, scan_id, ds)
    row = DicomwebInstance(
        project_id=project_id,
        series_id=series.id,
        transfer_syntax_uid=_transfer_syntax(ds),
        storage_key=storage_key,
        size=size,
        number_of_frames=_frames(ds),
        record=level_record(ds, Level.INSTANCE),
        metadata_json=_metadata(ds, sop_uid),
        **level_values(ds, Level.INSTANCE),
        **owner,
    )
    try:
        row.frame_index = index_frames_of(ds, fp).to_bytes()
    except NoPixelData:
        row.frames_refusal = "the instance has no Pixel Data, so no frames"
    except FrameIndexError as exc:
        row.frames_refusal = str(exc).replace(str(getattr(fp, "name", "")), "the instance")
    db.add(row)
    db.flush()  # a concurrent index of the same UID fails here, in the caller's savepoint


def _study_row(db: Session, session: ImagingSession, ds: Dataset) -> DicomwebStudy:
    for _ in range(2):
        found = db.get(DicomwebStudy, session.id)
        if found is not None:
            return found
        row = DicomwebStudy(
            session_id=session.id,
            project_id=session.project_id,
            record=level_record(ds, Level.STUDY),
            **level_values(ds, Level.STUDY),
        )
        row.study_instance_uid = session.study_instance_uid  # the session's, always set
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            continue
        return row
    raise RuntimeError(f"the DICOMweb study of session {session.id} could not be indexed")


def _series_row(
    db: Session, session: ImagingSession, scan_id: int | None, ds: Dataset
) -> DicomwebSeries:
    uid = str(ds.get("SeriesInstanceUID", ""))
    for _ in range(2):
        found = db.scalar(
            select(DicomwebSeries).where(
                DicomwebSeries.session_id == session.id, DicomwebSeries.series_instance_uid == uid
            )
        )
        if found is not None:
            if found.scan_id is None and scan_id is not None:
                found.scan_id = scan_id
            return found
        row = DicomwebSeries(
            project_id=session.project_id,
            session_id=session.id,
            scan_id=scan_id,
            record=level_record(ds, Level.SERIES),
            **level_values(ds, Level.SERIES),
        )
        row.series_instance_uid = uid
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            continue
        return row
    raise RuntimeError(f"the DICOMweb series {uid} could not be indexed")


def _drop_if_empty(db: Session, series_id: int) -> None:
    has_instances = exists().where(DicomwebInstance.series_id == series_id)
    db.execute(
        delete(DicomwebSeries).where(
            DicomwebSeries.id == series_id, DicomwebSeries.scan_id.is_(None), ~has_instances
        )
    )


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(uid) if uid else IMPLICIT_VR_LITTLE_ENDIAN


def _frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _metadata(ds: Dataset, sop_uid: str) -> str | None:
    try:
        return metadata_text(ds)
    except Exception:  # pydicom's JSON encoder raises many types on odd values
        log.warning("no stored metadata for %s; it will be built from the file", sop_uid)
        return None


def backfill(database: Database, storage: Storage) -> int:
    """Index every stored instance and ROI collection that has no index row yet.

    For data stored before the index existed (or by a version without it); committed in
    batches; an instance whose file is missing or unreadable is logged and skipped.
    Returns how many were looked at.
    """
    done = 0
    after = {"instance": 0, "collection": 0}  # ids go up: each row is tried once per run
    while True:
        with database.session(write=True) as db:
            batch = _unindexed(db, after)
            if not batch:
                return done
            for kind, row_id in batch:
                after[kind] = row_id
                try:
                    with db.begin_nested():
                        _backfill_one(db, storage, kind, row_id)
                    done += 1
                except (OSError, FrameIndexError, pydicom.errors.InvalidDicomError) as exc:
                    log.warning("not indexed: %s %s (%s)", kind, row_id, exc)
            db.commit()


def _unindexed(db: Session, after: dict[str, int]) -> list[tuple[str, int]]:
    queries = {
        "instance": select(Instance.id)
        .where(
            ~exists().where(DicomwebInstance.instance_id == Instance.id),
            Instance.id > after["instance"],
        )
        .order_by(Instance.id),
        "collection": select(RoiCollection.id)
        .where(
            ~exists().where(DicomwebInstance.collection_id == RoiCollection.id),
            RoiCollection.id > after["collection"],
        )
        .order_by(RoiCollection.id),
    }
    for kind, query in queries.items():
        ids = db.scalars(query.limit(_BACKFILL_BATCH)).all()
        if ids:
            return [(kind, i) for i in ids]
    return []


def _backfill_one(db: Session, storage: Storage, kind: str, row_id: int) -> None:
    if kind == "collection":
        collection = db.get(RoiCollection, row_id)
        if collection is not None:
            index_collection(db, storage, collection)
        return
    instance = db.get(Instance, row_id)
    if instance is None:
        return
    scan = db.get(Scan, instance.scan_id)
    session = db.get(ImagingSession, scan.session_id) if scan is not None else None
    if scan is not None and session is not None:
        index_instance(db, storage, instance, scan, session)
