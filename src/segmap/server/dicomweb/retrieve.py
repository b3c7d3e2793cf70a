"""Finding what a WADO-RS path names in one project's index, and reading its bytes.

:func:`locate` answers every retrieval's first question — which stored instances does
``/studies/{study}[/series/{series}[/instances/{sop}]]`` name in this project — from
the index alone, and says which UID is unknown when nothing matches (404). The bytes
are then read from storage in blocks (:func:`file_chunks`), so an answer streams
whatever the size of the study; frames are read at their indexed offsets
(:func:`segmap.imaging.frame_read.read_frame`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from segmap.imaging.frame_index import FrameIndex
from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.dicomweb.errors import BadRequest, NotFoundError
from segmap.server.storage import CHUNK, Storage

_FRAME_LIST = re.compile(r"[0-9]+(,[0-9]+)*")
_MAX_FRAMES_PER_REQUEST = 10_000


@dataclass(frozen=True)
class Located:
    """One stored instance a retrieval names, with what reading it needs."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str | None
    storage_key: str
    size: int
    transfer_syntax_uid: str
    number_of_frames: int
    frame_index: bytes | None = None
    frames_refusal: str | None = None
    metadata_json: str | None = None

    def url(self, root: str) -> str:
        """The instance's WADO-RS URL under the project root ``root``."""
        return (
            f"{root}/studies/{quote(self.study_uid)}/series/{quote(self.series_uid)}"
            f"/instances/{quote(self.sop_uid)}"
        )

    def frames(self) -> FrameIndex:
        """The frame index; 404 saying why when the instance has no frames to serve."""
        if self.frame_index is None:
            reason = self.frames_refusal or "it has no frames"
            raise NotFoundError(f"instance {self.sop_uid} has no frames to send: {reason}")
        return FrameIndex.from_bytes(self.frame_index)


def locate(
    db: Session,
    project_id: str,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    *,
    with_frames: bool = False,
    with_metadata: bool = False,
) -> list[Located]:
    """The instances named, in series and InstanceNumber order; 404 naming the unknown UID."""
    columns: list[Any] = [
        DicomwebStudy.study_instance_uid,
        DicomwebSeries.series_instance_uid,
        DicomwebInstance.sop_instance_uid,
        DicomwebInstance.sop_class_uid,
        DicomwebInstance.storage_key,
        DicomwebInstance.size,
        DicomwebInstance.transfer_syntax_uid,
        DicomwebInstance.number_of_frames,
    ]
    if with_frames:
        columns += [DicomwebInstance.frame_index, DicomwebInstance.frames_refusal]
    if with_metadata:
        columns.append(DicomwebInstance.metadata_json)
    stmt = (
        select(*columns)
        .select_from(DicomwebInstance)
        .join(DicomwebSeries, DicomwebSeries.id == DicomwebInstance.series_id)
        .join(DicomwebStudy, DicomwebStudy.session_id == DicomwebSeries.session_id)
        .where(
            DicomwebInstance.project_id == project_id,
            DicomwebStudy.study_instance_uid == study_uid,
        )
    )
    if series_uid is not None:
        stmt = stmt.where(DicomwebSeries.series_instance_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(DicomwebInstance.sop_instance_uid == sop_uid)
    stmt = stmt.order_by(
        DicomwebSeries.series_number.is_(None),
        DicomwebSeries.series_number,
        DicomwebSeries.id,
        DicomwebInstance.instance_number.is_(None),
        DicomwebInstance.instance_number,
        DicomwebInstance.id,
    )
    found = [_located(row, with_frames, with_metadata) for row in db.execute(stmt)]
    if not found:
        raise NotFoundError(_missing(db, project_id, study_uid, series_uid, sop_uid))
    return found


def _located(row: Any, with_frames: bool, with_metadata: bool) -> Located:
    base = row[:8]
    extra: dict[str, object] = {}
    if with_frames:
        extra["frame_index"], extra["frames_refusal"] = row[8], row[9]
    if with_metadata:
        extra["metadata_json"] = row[-1]
    return Located(*base, **extra)  # type: ignore[arg-type]


def _missing(db: Session, project_id: str, study: str, series: str | None, sop: str | None) -> str:
    study_row = db.scalar(
        select(DicomwebStudy.session_id).where(
            DicomwebStudy.project_id == project_id, DicomwebStudy.study_instance_uid == study
        )
    )
    if study_row is None:
        return f"project {project_id!r} has no study {study}"
    if series is not None:
        series_row = db.scalar(
            select(DicomwebSeries.id).where(
                DicomwebSeries.session_id == study_row,
                DicomwebSeries.series_instance_uid == series,
            )
        )
        if series_row is None:
            return f"study {study} has no series {series}"
    if sop is not None:
        return f"series {series} has no instance {sop}"
    return f"study {study} has no stored instances"


def file_chunks(storage: Storage, key: str) -> Iterator[bytes]:
    """A stored object's bytes in blocks (the file is open only while iterating)."""
    with storage.open(key) as fp:
        while chunk := fp.read(CHUNK):
            yield chunk


def frame_numbers(text: str, count: int) -> list[int]:
    """A ``/frames/{list}`` list as numbers: 400 when malformed, 404 past the last frame."""
    if not _FRAME_LIST.fullmatch(text):
        raise BadRequest(f"frame list {text!r} must be frame numbers separated by commas (1,2,3)")
    numbers = [int(n) for n in text.split(",")]
    if len(numbers) > _MAX_FRAMES_PER_REQUEST:
        raise BadRequest(f"ask at most {_MAX_FRAMES_PER_REQUEST} frames per request")
    for n in numbers:
        if not 1 <= n <= count:
            raise NotFoundError(f"frame {n} does not exist; the instance has {count} frame(s)")
    return numbers
