"""Results back to the archive: each derived SEG of a study that came from it, pushed once.

With ``push_masks``, the follower asks :func:`pending_pushes` for the derived DICOM SEGs
(``seg.dcm`` of a conversion, indexed in ``dicomweb_instances`` with a derived folder) of
the project's sessions whose study was imported from the archive and which were not
pushed yet, and :func:`push_one` stores each with the client (STOW-RS, or Orthanc's
``POST /instances``) and records it as ``pushed``, so it is sent once and never imported
back. Driven from the database rather than from the job runner, a SEG made while the
archive was down (or segmap stopped) is pushed when it is back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from segmap.server.archive.clients import ArchiveAnswerError, ArchiveClient
from segmap.server.db.archive import EVENT_IMPORTED, EVENT_PUSHED, EVENT_REFUSED, ArchiveEvent
from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries
from segmap.server.db.engine import Database
from segmap.server.db.imaging import ImagingSession
from segmap.server.storage import LocalStorage

PUSH_BATCH = 20


@dataclass(frozen=True)
class PendingPush:
    """A derived SEG to push: where it is stored and its UIDs."""

    storage_key: str
    study_uid: str
    series_uid: str
    sop_uid: str


def pending_pushes(database: Database, project_id: str) -> list[PendingPush]:
    """Derived SEGs of archive studies not pushed (nor refused) yet, oldest first."""
    from_archive = select(ArchiveEvent.study_instance_uid).where(
        ArchiveEvent.project_id == project_id, ArchiveEvent.event == EVENT_IMPORTED
    )
    handled = select(ArchiveEvent.series_instance_uid).where(
        ArchiveEvent.project_id == project_id,
        ArchiveEvent.event.in_((EVENT_PUSHED, EVENT_REFUSED)),
    )
    with database.session() as db:
        rows = db.execute(
            select(
                DicomwebInstance.storage_key,
                ImagingSession.study_instance_uid,
                DicomwebSeries.series_instance_uid,
                DicomwebInstance.sop_instance_uid,
            )
            .join(DicomwebSeries, DicomwebSeries.id == DicomwebInstance.series_id)
            .join(ImagingSession, ImagingSession.id == DicomwebSeries.session_id)
            .where(
                DicomwebInstance.project_id == project_id,
                DicomwebInstance.derived_folder_id.is_not(None),
                ImagingSession.study_instance_uid.in_(from_archive),
                DicomwebSeries.series_instance_uid.not_in(handled),
            )
            .order_by(DicomwebInstance.id)
            .limit(PUSH_BATCH)
        ).all()
    return [PendingPush(*row) for row in rows]


def push_one(
    database: Database,
    storage: LocalStorage,
    client: ArchiveClient,
    project_id: str,
    item: PendingPush,
) -> str:
    """Store one derived SEG in the archive and record it; the event recorded.

    The archive being down raises (``ArchiveUnavailable``: the follower backs off and
    the SEG stays pending); the archive refusing the file records it as refused.
    """
    data = storage.read_bytes(item.storage_key)
    try:
        client.store(data)
        event, detail = EVENT_PUSHED, "the derived SEG was stored in the archive"
    except ArchiveAnswerError as exc:
        event, detail = EVENT_REFUSED, f"the archive did not take the derived SEG: {exc}"
    with database.session(write=True) as db:
        db.add(
            ArchiveEvent(
                project_id=project_id,
                event=event,
                study_instance_uid=item.study_uid,
                series_instance_uid=item.series_uid,
                sop_instance_uid=item.sop_uid,
                modality="SEG",
                instances=1,
                detail=detail,
            )
        )
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
    return event
