"""Importing from the archive: an annotation series with every series it references.

The files are fetched with the connection's client, staged, and stored by
:func:`segmap.server.dicomweb.stow.store_parts` — the path STOW-RS takes — so imported
data become sessions, scans and collections exactly as uploads do (deduplicated by SOP
Instance UID: a re-sent study changes nothing) and automation queues its jobs. segmap's
own derived SEGs (pushed before, or marked by their Manufacturer) are never imported.
Each annotation series ends as one ``archive_events`` row: imported or refused, with why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from segmap.annotations.info import annotation_info_from_dataset
from segmap.errors import AnnotationError
from segmap.pipeline.derived_seg import MANUFACTURER as SEGMAP_MANUFACTURER
from segmap.server.archive.clients import ArchiveClient, SeriesRef
from segmap.server.archive.filters import STUDY_KEYWORDS, matches
from segmap.server.db.archive import (
    EVENT_IMPORTED,
    EVENT_PUSHED,
    EVENT_REFUSED,
    EVENT_SKIPPED,
    ArchiveConnection,
    ArchiveEvent,
)
from segmap.server.db.base import utcnow
from segmap.server.db.dicomweb import DicomwebInstance
from segmap.server.db.engine import Database
from segmap.server.db.imaging import ImagingSession, Instance, Scan, StoredVia
from segmap.server.dicomweb.stow import Outcome, StowPart, read_part, store_parts
from segmap.server.imaging.events import ImagingEvents
from segmap.server.storage import LocalStorage, StagedFile
from segmap.server.web.auth import Principal

log = logging.getLogger("segmap.server.archive")

ANNOTATION_MODALITIES = ("SEG", "RTSTRUCT")
STAGE_WORKERS = 2  # threads staging and reading fetched files (see _receive)


@dataclass(frozen=True)
class ImportTarget:
    """Where imports go: the project, who they are stored as, and the service's parts."""

    database: Database
    storage: LocalStorage
    events: ImagingEvents
    project_id: str
    principal: Principal
    max_file_bytes: int
    filter: dict[str, list[str]] = field(default_factory=dict)
    prefetch_images: bool = False


@dataclass(frozen=True)
class Imported:
    """What one annotation series came to: ``event`` imported/refused, or None (skipped)."""

    series_uid: str
    event: str | None
    detail: str
    instances: int = 0


def already_handled(target: ImportTarget, series_uid: str, *, by_hand: bool = False) -> bool:
    """Whether the series was imported, refused, skipped or pushed by segmap before.

    ``by_hand``: only imported or pushed count, and a refusal or skip recorded before is
    forgotten (someone asked for the series itself, so the filter does not apply and a
    refusal is tried again).
    """
    mine = (
        ArchiveEvent.project_id == target.project_id,
        ArchiveEvent.series_instance_uid == series_uid,
    )
    if by_hand:
        with target.database.session(write=True) as db:
            db.execute(
                delete(ArchiveEvent).where(
                    *mine, ArchiveEvent.event.in_((EVENT_REFUSED, EVENT_SKIPPED))
                )
            )
            db.commit()
    with target.database.session() as db:
        found = db.scalar(select(ArchiveEvent.id).where(*mine).limit(1))
    return found is not None


def import_annotation_series(
    target: ImportTarget,
    client: ArchiveClient,
    ref: SeriesRef,
    progress: Callable[[str], None] = lambda _stage: None,
    *,
    by_hand: bool = False,
) -> Imported:
    """Import an RTSTRUCT/SEG series and the series it references; record the outcome.

    Raises the client's ``ArchiveError`` when the archive fails midway (nothing recorded,
    so the follower tries again); problems of the files themselves are recorded as
    refused. ``by_hand`` (an import someone asked for) ignores the connection's filter.
    """
    if already_handled(target, ref.series_uid, by_hand=by_hand):
        return Imported(ref.series_uid, None, "already imported")
    progress(f"fetching annotation series {ref.series_uid}")
    files = list(client.series_files(ref.study_uid, ref.series_uid))
    if not files:
        return Imported(ref.series_uid, None, "the archive holds no instance of it")
    headers = [_header(f) for f in files]
    first = next((h for h in headers if h is not None), None)
    if first is None:
        return _record(target, ref, EVENT_REFUSED, "its files are not readable DICOM", 0, "")
    sop = str(first.get("SOPInstanceUID", ""))
    if _is_own(target, first):
        return _record(target, ref, EVENT_SKIPPED, "a SEG segmap made: not imported", 0, sop)
    refused = None if by_hand else matches(target.filter, first)
    if refused is not None:
        return _record(target, ref, EVENT_SKIPPED, f"not imported: {refused}", 0, sop)
    parts = _receive(target, files, 1)
    try:
        references = _referenced_series(headers, parts)
        for series_uid in references:
            if _held_whole(target, client, series_uid):
                continue  # stored before (prefetched, or another annotation's)
            progress(f"fetching referenced series {series_uid}")
            series = client.series_files(first.StudyInstanceUID, series_uid)
            parts.extend(_receive(target, series, len(parts) + 1))
        progress(f"storing {len(parts)} instance(s)")
        outcomes = _store(target, parts)
    finally:
        _discard(target, parts)
    staged_count = len(parts)
    annotation = {str(h.SOPInstanceUID) for h in headers if h is not None}
    failures = [o for o in outcomes if o.failure is not None and o.sop_instance_uid in annotation]
    if failures:
        return _record(target, ref, EVENT_REFUSED, failures[0].reason, staged_count, sop)
    images = staged_count - len(files)
    detail = (
        f"{len(files)} annotation instance(s) and {images} image instance(s) of "
        f"{len(references)} referenced series"
    )
    return _record(target, ref, EVENT_IMPORTED, detail, staged_count, sop)


def _held_whole(target: ImportTarget, client: ArchiveClient, series_uid: str) -> bool:
    """Whether the project holds every instance the archive has of an image series."""
    held = holds_series(target, series_uid)
    if held == 0:
        return False
    found = client.find_series(series_uid)
    return found is not None and 0 < found.instances <= held


def _header(data: bytes) -> Dataset | None:
    try:
        return pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    except Exception:  # pydicom raises many types for what is not DICOM
        return None


def _receive(target: ImportTarget, files: Iterable[bytes], first_number: int) -> list[StowPart]:
    """Stage each file and read it as STOW-RS reads a received part (numbered from
    ``first_number``), while the next files still arrive.

    Staging (writing and flushing to disk) and fetching wait on the disk and the network
    with the GIL released, so ``STAGE_WORKERS`` threads overlap them with the reading,
    which is Python work. At most ``2 * STAGE_WORKERS`` files wait in memory. When
    fetching fails midway, what was staged is discarded and the error raised.
    """
    room = threading.Semaphore(2 * STAGE_WORKERS)
    futures: list[Future[StowPart]] = []

    def one(number: int, data: bytes) -> StowPart:
        try:
            staged = _stage(target, data)
            return read_part(number, "application/dicom", staged, target.max_file_bytes)
        finally:
            room.release()

    try:
        with ThreadPoolExecutor(STAGE_WORKERS, thread_name_prefix="segmap-archive-stage") as pool:
            for number, data in enumerate(files, first_number):
                room.acquire()
                futures.append(pool.submit(one, number, data))
        return [f.result() for f in futures]
    except BaseException:
        _discard(target, [f.result() for f in futures if f.done() and f.exception() is None])
        raise


def _discard(target: ImportTarget, parts: list[StowPart]) -> None:
    for part in parts:
        target.storage.discard(part.staged)  # a no-op for what was stored


def _store(target: ImportTarget, parts: list[StowPart]) -> list[Outcome]:
    """Store read parts as one STOW-RS request would, in one transaction; each part's
    outcome (stored, already held, or refused with the reason)."""
    with target.database.session(write=True) as db:
        return store_parts(
            db,
            target.storage,
            target.principal,
            target.project_id,
            parts,
            study=None,
            events=target.events,
            max_file_bytes=target.max_file_bytes,
            stored_via=StoredVia.ARCHIVE,
        )


def _stage(target: ImportTarget, data: bytes) -> StagedFile:
    with target.storage.stage(target.max_file_bytes) as writer:
        writer.write_from(data)
        return writer.finish()


def _referenced_series(headers: list[Dataset | None], parts: list[StowPart]) -> list[str]:
    """The series the annotation files reference, from the headers already read."""
    found: list[str] = []
    for header, part in zip(headers, parts, strict=True):
        if header is None:
            continue  # store_parts refuses it with the reason
        try:
            info = annotation_info_from_dataset(header, part.staged.path)
        except AnnotationError:
            continue  # store_parts refuses it with the reason
        found.extend(u for u in info.referenced_series_uids if u not in found)
    return found


def _is_own(target: ImportTarget, ds: Dataset) -> bool:
    """A SEG segmap wrote: pushed by this project, indexed as derived, or marked so."""
    if (
        ds.get("Manufacturer") == SEGMAP_MANUFACTURER
        and ds.get("ManufacturerModelName") == SEGMAP_MANUFACTURER
    ):
        return True
    sop = str(ds.get("SOPInstanceUID", ""))
    with target.database.session() as db:
        pushed = db.scalar(
            select(ArchiveEvent.id)
            .where(
                ArchiveEvent.project_id == target.project_id,
                ArchiveEvent.event == EVENT_PUSHED,
                ArchiveEvent.sop_instance_uid == sop,
            )
            .limit(1)
        )
        derived = db.scalar(
            select(DicomwebInstance.id)
            .where(
                DicomwebInstance.project_id == target.project_id,
                DicomwebInstance.sop_instance_uid == sop,
                DicomwebInstance.derived_folder_id.is_not(None),
            )
            .limit(1)
        )
    return pushed is not None or derived is not None


def _record(
    target: ImportTarget, ref: SeriesRef, event: str, detail: str, instances: int, sop: str
) -> Imported:
    with target.database.session(write=True) as db:
        db.add(
            ArchiveEvent(
                project_id=target.project_id,
                event=event,
                study_instance_uid=ref.study_uid,
                series_instance_uid=ref.series_uid,
                sop_instance_uid=sop,
                modality=ref.modality,
                instances=instances,
                detail=detail[:2000],
            )
        )
        if event == EVENT_IMPORTED:
            row = db.get(ArchiveConnection, target.project_id)
            if row is not None:
                row.last_import_at = utcnow()
        try:
            db.commit()
        except IntegrityError:
            db.rollback()  # recorded by a concurrent import of the same series
    log.info("archive %s: series %s %s (%s)", target.project_id, ref.series_uid, event, detail)
    return Imported(ref.series_uid, event, detail, instances)


def import_image_series(
    target: ImportTarget,
    client: ArchiveClient,
    ref: SeriesRef,
    progress: Callable[[str], None] = lambda _stage: None,
) -> int:
    """Store every instance of an image series (those already stored count once);
    how many instances the archive sent."""
    progress(f"fetching series {ref.series_uid}")
    parts = _receive(target, client.series_files(ref.study_uid, ref.series_uid), 1)
    try:
        if parts:
            _store(target, parts)
    finally:
        _discard(target, parts)
    return len(parts)


def prefetch_image_series(
    target: ImportTarget, client: ArchiveClient, ref: SeriesRef, first_file: bytes
) -> int:
    """Import a stable image series before any annotation asks for it, when the study
    passes the filter's study-level keys; how many instances were sent (0: filtered)."""
    header = _header(first_file)
    if header is None or matches(target.filter, header, STUDY_KEYWORDS) is not None:
        return 0
    return import_image_series(target, client, ref)


def holds_series(target: ImportTarget, series_uid: str) -> int:
    """How many instances of the image series the project holds (0: not a scan of it)."""
    with target.database.session() as db:
        return int(
            db.scalar(
                select(func.count(Instance.id))
                .join(Scan, Scan.id == Instance.scan_id)
                .join(ImagingSession, ImagingSession.id == Scan.session_id)
                .where(
                    ImagingSession.project_id == target.project_id,
                    Scan.series_instance_uid == series_uid,
                )
            )
            or 0
        )
