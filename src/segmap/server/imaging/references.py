"""Which scan of a session an ROI collection is drawn on, and whether it may be.

The scan is found from the collection's header (``segmap.annotations`` reads it); the
frame-of-reference rule is the library's
(:func:`segmap.annotations.info.frame_of_reference_mismatch`), the same one the
conversion applies, so an upload that passes here never fails a job for that reason.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segmap.annotations.info import frame_of_reference_mismatch
from segmap.annotations.types import AnnotationInfo
from segmap.server.db.imaging import ImagingSession, Instance, Scan
from segmap.server.errors import Unprocessable
from segmap.server.imaging.lookup import sorted_scans

_LOOKUP_BATCH = 500  # UIDs per IN (...) query, well under every backend's parameter limit


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


def check_frame_of_reference(info: AnnotationInfo, scan: Scan, label: str) -> None:
    """``Unprocessable`` naming the frames of reference when the collection's regions are
    not all drawn in the scan's frame of reference."""
    mismatch = frame_of_reference_mismatch(info, scan.frame_of_reference_uid)
    if mismatch is None:
        return
    what = f"the {info.modality} {label!r}"
    raise Unprocessable(
        f"{mismatch.describe(what, scan.series_instance_uid)}; a conversion would be refused "
        "for the same reason. Export the collection again from that scan, with every ROI "
        "on it"
    )
