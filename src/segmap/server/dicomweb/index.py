"""Filling the DICOMweb index (``segmap.server.db.dicomweb``) when an instance is stored.

:func:`index_instances` is called by the image upload's transaction for the new image
instances of each scan, :func:`index_collection` by the ROI collection upload for its file (RTSTRUCT
and SEG are instances of a series of their own). Both read the stored file once for its
header and frame layout (:mod:`.index_entry`), unless the caller made that entry
already (:func:`index_instances`, given STOW-RS's entries), and add rows in the caller's
transaction, so the index commits or rolls back with the upload itself. An upload's
instances of one scan are indexed together: one look-up of UIDs, one flush.
:func:`backfill` indexes what was stored before the index existed; the service runs it
at start-up.

Study and series rows take their attributes from the first instance indexed into them,
as sessions do. An instance whose SOPInstanceUID is already indexed in the project is
left out (logged): a UID names one object.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pydicom
from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.imaging.frame_index import FrameIndexError
from segmap.pipeline.convert import SEG_NAME as DERIVED_SEG_NAME
from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.db.engine import Database
from segmap.server.db.imaging import DerivedFolder, ImagingSession, Instance, RoiCollection, Scan
from segmap.server.dicomweb.index_entry import IndexEntry, read_index_entry
from segmap.server.dicomweb.levels import Level
from segmap.server.storage import Storage

log = logging.getLogger("segmap.server.dicomweb")

_BACKFILL_BATCH = 200


def index_instance(
    db: Session, storage: Storage, instance: Instance, scan: Scan, session: ImagingSession
) -> None:
    """Index a stored image instance (its row flushed, its file placed); no commit."""
    index_instances(db, storage, [instance], scan, session)


def index_instances(
    db: Session,
    storage: Storage,
    instances: Sequence[Instance],
    scan: Scan,
    session: ImagingSession,
    entries: Mapping[str, IndexEntry] | None = None,
) -> None:
    """Index stored image instances of one scan (rows flushed, files placed); no commit.

    ``entries`` (by the file's SHA-256) are what a caller already made from each file's
    header (:mod:`.index_entry`); the others' files are read here. All rows go in with
    one flush; if that fails, each instance is tried on its own, so one bad row costs
    only its own index entry. An instance already indexed is left as it is.
    """
    if not instances:
        return
    ids = [i.id for i in instances]
    done = set(
        db.scalars(
            select(DicomwebInstance.instance_id).where(DicomwebInstance.instance_id.in_(ids))
        )
    )
    todo = [i for i in instances if i.id not in done]
    prepared: list[tuple[Instance, IndexEntry]] = []
    for instance in todo:
        entry = (entries or {}).get(instance.sha256) or _read_entry(storage, instance.storage_key)
        if entry is not None:
            prepared.append((instance, entry))
    try:
        with db.begin_nested():
            _add_rows(db, session, scan.id, prepared)
    except Exception:
        log.info("indexing %d instances together failed; indexing one by one", len(prepared))
        for instance, entry in prepared:
            _guarded(
                db,
                storage,
                session=session,
                scan_id=scan.id,
                storage_key=instance.storage_key,
                size=instance.size,
                owner={"instance_id": instance.id},
                entry=entry,
            )


def _read_entry(storage: Storage, storage_key: str) -> IndexEntry | None:
    try:
        with storage.open(storage_key) as fp:
            return read_index_entry(fp)
    except Exception:
        log.exception("could not index %s for DICOMweb; it is stored", storage_key)
        return None


def _add_rows(
    db: Session,
    session: ImagingSession,
    scan_id: int | None,
    prepared: Sequence[tuple[Instance, IndexEntry]],
) -> None:
    """The rows of ``prepared`` (same session), with their study and series rows."""
    uids = [entry.sop_instance_uid for _instance, entry in prepared]
    taken = set(
        db.scalars(
            select(DicomwebInstance.sop_instance_uid).where(
                DicomwebInstance.project_id == session.project_id,
                DicomwebInstance.sop_instance_uid.in_(uids),
            )
        )
    )
    project = session.project_id
    new: list[tuple[Instance, IndexEntry]] = []
    for instance, entry in prepared:
        uid = entry.sop_instance_uid
        if uid in taken:
            log.warning("SOPInstanceUID %s is already indexed in project %s", uid, project)
            continue
        taken.add(uid)
        new.append((instance, entry))
    if not new:
        return
    # The study and series rows first (each look-up would flush rows added before it).
    _study_row(db, session, new[0][1])
    series_rows: dict[str, DicomwebSeries] = {}
    for _instance, entry in new:
        if entry.series_instance_uid not in series_rows:
            series_rows[entry.series_instance_uid] = _series_row(db, session, scan_id, entry)
    db.add_all(
        _instance_row(
            session,
            series_rows[entry.series_instance_uid],
            entry,
            instance.storage_key,
            instance.size,
            {"instance_id": instance.id},
        )
        for instance, entry in new
    )
    db.flush()  # a concurrent index of the same UID fails here, in the caller's savepoint


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


def _guarded(
    db: Session,
    storage: Storage,
    *,
    storage_key: str,
    entry: IndexEntry | None = None,
    **fields: Any,
) -> None:
    """Index one file in a savepoint; a failure is logged and never fails the upload
    (the instance is stored; :func:`backfill` tries again at the next start)."""
    try:
        with db.begin_nested():
            if entry is None:
                with storage.open(storage_key) as fp:
                    entry = read_index_entry(fp)
            _index_file(db, entry, storage_key=storage_key, **fields)
    except Exception:
        log.exception("could not index %s for DICOMweb; it is stored", storage_key)


def _index_file(
    db: Session,
    entry: IndexEntry,
    *,
    session: ImagingSession,
    scan_id: int | None,
    storage_key: str,
    size: int,
    owner: dict[str, int],
) -> None:
    sop_uid = entry.sop_instance_uid
    project_id = session.project_id
    taken = db.scalar(
        select(DicomwebInstance.id).where(
            DicomwebInstance.project_id == project_id, DicomwebInstance.sop_instance_uid == sop_uid
        )
    )
    if taken is not None:
        log.warning("SOPInstanceUID %s is already indexed in project %s", sop_uid, project_id)
        return
    _study_row(db, session, entry)
    series = _series_row(db, session, scan_id, entry)
    db.add(_instance_row(session, series, entry, storage_key, size, owner))
    db.flush()  # a concurrent index of the same UID fails here, in the caller's savepoint


def _instance_row(
    session: ImagingSession,
    series: DicomwebSeries,
    entry: IndexEntry,
    storage_key: str,
    size: int,
    owner: dict[str, int],
) -> DicomwebInstance:
    return DicomwebInstance(
        project_id=session.project_id,
        series_id=series.id,
        transfer_syntax_uid=entry.transfer_syntax_uid,
        storage_key=storage_key,
        size=size,
        number_of_frames=entry.number_of_frames,
        record=entry.records[Level.INSTANCE],
        metadata_json=entry.metadata_json,
        frame_index=entry.frame_index,
        frames_refusal=entry.frames_refusal,
        **entry.values[Level.INSTANCE],
        **owner,
    )


def _study_row(db: Session, session: ImagingSession, entry: IndexEntry) -> DicomwebStudy:
    for _ in range(2):
        found = db.get(DicomwebStudy, session.id)
        if found is not None:
            return found
        row = DicomwebStudy(
            session_id=session.id,
            project_id=session.project_id,
            record=entry.records[Level.STUDY],
            **entry.values[Level.STUDY],
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
    db: Session, session: ImagingSession, scan_id: int | None, entry: IndexEntry
) -> DicomwebSeries:
    uid = entry.series_instance_uid
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
            record=entry.records[Level.SERIES],
            **entry.values[Level.SERIES],
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
