"""Reading a conversion's inputs: the annotation and the image series it references.

An RTSTRUCT and the series' headers are independent reads that each take a good part of
a second for a large study, and both are pure-Python parsing (pydicom), which threads
cannot overlap. So, where the platform can fork cheaply and safely (Linux, a process
running one thread, as the command line does), the RTSTRUCT is parsed in a child process
while this process scans the series headers; elsewhere (threaded servers, daemonic pool
workers, other systems, or ``SEGMAP_NO_SPEEDUPS=1``: :mod:`segmap.pipeline.speedups`)
the two run one after the other with the same result.

The series is chosen by the SeriesInstanceUID the annotation references when the folder
holds several; a folder holding exactly one series is used even when the annotation
names another (the frame of reference is still checked, and the report warns).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

from segmap.annotations.info import read_annotation_info
from segmap.annotations.rtstruct import read_rtstruct
from segmap.annotations.types import AnnotationInfo, ContourRegion
from segmap.errors import SeriesSelectionError
from segmap.imaging.series import DicomSeries, find_series, load_series
from segmap.imaging.sop_classes import CollectionKind, collection_kind
from segmap.pipeline.speedups import speedups_enabled

_MODALITY_TAG = 0x00080060


@dataclass
class Inputs:
    """The annotation, its ROIs (RTSTRUCT only), the series, and how long each read took."""

    info: AnnotationInfo
    contour_regions: list[ContourRegion] | None
    series: DicomSeries
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    read_in_parallel: bool = False


def is_rtstruct(path: Path) -> bool:
    """True when the file's first elements say RTSTRUCT (Modality or SOP class).

    Reads only up to the Modality attribute; anything unreadable answers False and is
    left to the full readers, whose messages say what is wrong.
    """
    try:
        with open(path, "rb") as f:
            ds = read_partial(f, stop_when=_past_modality)
    except Exception:  # not DICOM, truncated, unreadable: the real reader will explain
        return False
    kind = collection_kind(str(ds.get("Modality", "")), str(ds.get("SOPClassUID", "")))
    return kind is CollectionKind.RTSTRUCT


def _past_modality(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) > _MODALITY_TAG


def read_inputs(
    rois_path: Path,
    image_dir: Path,
    *,
    fixup: bool = False,
    parallel: bool = True,
    while_waiting: Callable[[], object] | None = None,
) -> Inputs:
    """Read the annotation at ``rois_path`` and load the series it references from
    ``image_dir`` (headers only; pixel data is never read here).

    ``while_waiting`` is called once the series headers are read if the RTSTRUCT is
    still being parsed in the child: work the caller needs later anyway (importing its
    output writer, say) then fills time this process would spend waiting. It is not
    called when the reads run one after the other.

    Raises:
        SegmapError: unreadable annotation, no matching series, bad series geometry.
    """
    rois_path, image_dir = Path(rois_path), Path(image_dir)
    warnings: list[str] = []
    timings: dict[str, float] = {}
    if not is_rtstruct(rois_path):
        t = time.perf_counter()
        info = read_annotation_info(rois_path)
        timings["read_annotation"] = time.perf_counter() - t
        t = time.perf_counter()
        series = load_referenced_series(image_dir, info, fixup, warnings)
        timings["load_series"] = time.perf_counter() - t
        return Inputs(info, None, series, warnings, timings)

    pool = _fork_pool() if parallel and speedups_enabled() else None
    if pool is None:
        t = time.perf_counter()
        info, regions = read_rtstruct(rois_path)
        timings["read_annotation"] = time.perf_counter() - t
        t = time.perf_counter()
        series = load_referenced_series(image_dir, info, fixup, warnings)
        timings["load_series"] = time.perf_counter() - t
        return Inputs(info, regions, series, warnings, timings)

    # Freeze the heap (modules, caches: some 500 k objects) for the two reads: it keeps
    # the garbage collector of both processes from walking it again and again while
    # pydicom allocates its datasets (a full collection costs ~20 ms here), and keeps
    # the child from copying pages just to mark objects (gc.freeze's documented use
    # before a fork). The parent's heap is unfrozen again below.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        return _read_in_parallel(
            pool, rois_path, image_dir, fixup, warnings, timings, while_waiting
        )
    finally:
        if freeze:
            gc.unfreeze()


def _read_in_parallel(
    pool: ProcessPoolExecutor,
    rois_path: Path,
    image_dir: Path,
    fixup: bool,
    warnings: list[str],
    timings: dict[str, float],
    while_waiting: Callable[[], object] | None,
) -> Inputs:
    with pool:
        t = time.perf_counter()
        parsing: Future[tuple[tuple[AnnotationInfo, list[ContourRegion]], float]] = pool.submit(
            _timed_read_rtstruct, rois_path
        )
        # Meanwhile, guess the common case: the folder holds just the annotated series.
        guess: DicomSeries | None = None
        with contextlib.suppress(SeriesSelectionError):
            guess = load_series(image_dir, fixup=fixup)
        scan_s = time.perf_counter() - t
        if while_waiting is not None and not parsing.done():
            while_waiting()
        (info, regions), parse_s = parsing.result()
    timings["read_annotation"] = parse_s
    t = time.perf_counter()
    if guess is not None and (
        guess.series_instance_uid in info.referenced_series_uids or not info.referenced_series_uids
    ):
        series = guess
    else:
        series = load_referenced_series(image_dir, info, fixup, warnings)
    timings["load_series"] = scan_s + time.perf_counter() - t
    return Inputs(info, regions, series, warnings, timings, read_in_parallel=True)


def _timed_read_rtstruct(path: Path) -> tuple[tuple[AnnotationInfo, list[ContourRegion]], float]:
    t = time.perf_counter()
    result = read_rtstruct(path)
    return result, time.perf_counter() - t


def _fork_pool() -> ProcessPoolExecutor | None:
    """A one-process pool started by fork, or None where that is unavailable or unsafe.

    Forking is only safe while this process runs a single thread (a lock held by another
    thread at fork time stays locked forever in the child), and daemonic processes (pool
    workers) may not have children: servers and batch workers read one after the other.
    """
    if (
        sys.platform != "linux"
        or multiprocessing.current_process().daemon
        or threading.active_count() > 1
    ):
        return None
    try:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    except (OSError, ValueError, RuntimeError):
        return None


def load_referenced_series(
    folder: Path, info: AnnotationInfo, fixup: bool, warnings: list[str]
) -> DicomSeries:
    """The series ``info`` references, from ``folder`` (which may hold several)."""
    refs = list(info.referenced_series_uids)
    if len(refs) == 1:
        try:
            return load_series(folder, refs[0], fixup=fixup)
        except SeriesSelectionError:
            pass  # not there under that UID: look at what the folder does hold
    summaries = find_series(folder)
    present = [s for s in summaries if s.series_instance_uid in refs]
    if present:
        return load_series(folder, present[0].series_instance_uid, fixup=fixup)
    if len(summaries) == 1 and refs:
        only = summaries[0]
        warnings.append(
            f"the annotation references series {', '.join(refs)}, which is not in {folder}; "
            f"converted onto the only series there, {only.series_instance_uid}, whose frame "
            "of reference was checked"
        )
        return load_series(folder, only.series_instance_uid, fixup=fixup)
    if not refs and len(summaries) == 1:
        return load_series(folder, summaries[0].series_instance_uid, fixup=fixup)
    listing = "; ".join(s.describe() for s in summaries) or "no image series"
    wanted = ", ".join(refs) if refs else "no series at all (it names none)"
    raise SeriesSelectionError(
        f"{info.path} references image series {wanted}, but {folder} holds {listing}; "
        "give the folder of the series the annotation was drawn on"
    )
