"""One step of following an archive: what is new there, imported.

:func:`orthanc_step` reads Orthanc's ``/changes`` from the stored sequence number: a
``NewSeries`` or ``StableSeries`` of modality SEG or RTSTRUCT imports that annotation
with the series it references; a ``StableSeries`` of images completes a scan segmap
holds with fewer instances (the annotation came while its images were still arriving),
and with ``prefetch_images`` imports an image series segmap does not hold yet, so a later
annotation finds its scan here and only the annotation is fetched.
The cursor is stored after each change, so a restart resumes after the last one done and
a change that was done is never done again (an import that finished just before a crash
is recorded, and found so, by the importer).

:func:`dicomweb_step` polls QIDO for SEG and RTSTRUCT series, per modality, with
``SeriesDate`` from the last one seen less an overlap window (series dated the same day
as the last poll, or sent late with an older date, are seen again and skipped when
known), and a full search without a date at start and every ``sweep_s``, which also finds
annotations that carry no SeriesDate, or were sent late with a date older than the window.
A SeriesDate after tomorrow (UTC) is imported but does not move the cursor: one mis-dated
series (a 2099) would otherwise shut the window on everything sent today until the next
sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from segmap.server.archive.clients import DicomwebClient, OrthancClient, SeriesRef
from segmap.server.archive.importer import (
    ANNOTATION_MODALITIES,
    ImportTarget,
    already_handled,
    holds_series,
    import_annotation_series,
    import_image_series,
    prefetch_image_series,
)

log = logging.getLogger("segmap.server.archive")

CHANGE_BATCH = 100
# Series asked for per QIDO search. A shorter answer is not taken for the last page:
# servers may cap their answers below what was asked (PS3.18 lets them), so the search
# goes on until a page brings no series not seen in it yet (an empty page, or a server
# that ignores offset).
QIDO_PAGE = 500
SERIES_CHANGES = ("NewSeries", "StableSeries")


@dataclass(frozen=True)
class StepResult:
    """Where the cursor is now, how many series were imported, and whether more waits."""

    cursor: str | None
    imported: int
    more: bool


def orthanc_step(
    target: ImportTarget,
    client: OrthancClient,
    cursor: str | None,
    save_cursor: Callable[[str], None],
) -> StepResult:
    """Handle one batch of Orthanc changes after ``cursor`` (saving it after each)."""
    since = int(cursor) if cursor and cursor.isdigit() else 0
    changes, last, done = client.changes(since, CHANGE_BATCH)
    if not changes and last < since:
        # Orthanc's database was replaced: its sequence numbers started again.
        log.warning(
            "archive %s: Orthanc's change log restarted (last %d < %d); "
            "following it from the start",
            target.project_id,
            last,
            since,
        )
        save_cursor("0")
        return StepResult("0", 0, True)
    imported = 0
    for change in changes:
        seq = int(change["Seq"])
        if change.get("ChangeType") in SERIES_CHANGES and change.get("ResourceType") == "Series":
            imported += _orthanc_series(
                target, client, str(change["ID"]), change["ChangeType"] == "StableSeries"
            )
        save_cursor(str(seq))
        since = seq
    if not changes and last > since:
        save_cursor(str(last))  # nothing of ours in between (e.g. changes Orthanc dropped)
        since = last
    return StepResult(str(since), imported, not done)


def _orthanc_series(
    target: ImportTarget, client: OrthancClient, orthanc_id: str, stable: bool
) -> int:
    found = client.series_by_id(orthanc_id)
    if found is None:
        return 0  # deleted since
    ref, instance_ids = found
    if ref.modality in ANNOTATION_MODALITIES:
        done = import_annotation_series(target, client, ref)
        return 1 if done.event == "imported" else 0
    if stable and instance_ids:
        held = holds_series(target, ref.series_uid)
        if 0 < held < len(instance_ids):
            import_image_series(target, client, ref)
        elif held == 0 and target.prefetch_images:
            prefetch_image_series(target, client, ref, client.instance_file(instance_ids[0]))
    return 0


@dataclass
class DicomwebPoll:
    """The DICOMweb follower's memory between polls (the cursor itself is stored)."""

    sweep_s: float
    overlap_days: int
    last_sweep: float | None = None


def dicomweb_step(
    target: ImportTarget,
    client: DicomwebClient,
    cursor: str | None,
    poll: DicomwebPoll,
    now: float,
    save_cursor: Callable[[str], None],
) -> StepResult:
    """One QIDO poll (a full sweep when due); the cursor is the newest SeriesDate seen."""
    latest = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%d")
    # No cursor, or one no longer plausible (stored before mis-dated series were kept out
    # of it): a full search, which sets it again.
    known = cursor if cursor and _plausible(cursor, latest) else ""
    sweep = poll.last_sweep is None or now - poll.last_sweep >= poll.sweep_s or not known
    since = "" if sweep else _minus_days(known, poll.overlap_days)
    newest, imported = known, 0
    for modality in ANNOTATION_MODALITIES:
        offset, seen = 0, set[str]()
        while True:
            page = client.search_series(modality, since, offset, QIDO_PAGE)
            fresh = [ref for ref in page if ref.series_uid not in seen]
            if not fresh:
                break
            seen.update(ref.series_uid for ref in fresh)
            for ref in fresh:
                imported += _dicomweb_series(target, client, ref)
                if _plausible(ref.series_date, latest) and ref.series_date > newest:
                    newest = ref.series_date
            offset += len(page)
    if sweep:
        poll.last_sweep = now
    if newest and newest != cursor:
        save_cursor(newest)
    return StepResult(newest or cursor, imported, False)


def _dicomweb_series(target: ImportTarget, client: DicomwebClient, ref: SeriesRef) -> int:
    if not ref.series_uid or already_handled(target, ref.series_uid):
        return 0
    done = import_annotation_series(target, client, ref)
    return 1 if done.event == "imported" else 0


def _plausible(day: str, latest: str) -> bool:
    """Whether a SeriesDate may be the cursor: a DICOM date (YYYYMMDD) not after ``latest``."""
    return len(day) == 8 and day.isdigit() and day <= latest


def _minus_days(day: str, days: int) -> str:
    try:
        start = date(int(day[:4]), int(day[4:6]), int(day[6:8])) - timedelta(days=days)
    except ValueError:
        return ""
    return start.strftime("%Y%m%d")
