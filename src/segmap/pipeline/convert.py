"""One conversion: region map + image series + ROI collection -> masks, image, report, preview.

Stages, each timed in the report:

1. read the region map and the annotation (an RTSTRUCT is read whole, a SEG's header);
2. load the image series the annotation references (headers only) and check that both
   share a frame of reference;
3. RTSTRUCT: rasterise each ROI's contours on the series grid; SEG: place its segments;
4. paint the composite mask in map order under the overlap and unmatched-name policies;
5. write ``mask.nii.gz`` (native grid) and, unless mask-only, the image: ``image.nii.gz``
   on the native grid, or with a target spacing ``image_resampled.nii.gz`` and
   ``mask_resampled.nii.gz``; then ``preview.png`` and ``report.json``; with ``write_seg``
   also ``seg.dcm``, the mask as a DICOM SEG (:mod:`segmap.pipeline.derived_seg`).

All files go through :class:`~segmap.pipeline.outputs.OutputTransaction`: the output folder
receives every file or none. ``mask_only`` never decodes image pixel data.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from segmap.annotations.info import check_frame_of_reference
from segmap.annotations.rtstruct import contours_on_missing_slices
from segmap.annotations.types import AnnotationInfo, ContourRegion, MaskRegion
from segmap.errors import SegmapError
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.series import DicomSeries
from segmap.labelmap import RegionMap, read_region_map
from segmap.masks.composite import CompositeResult, NamedMask, paint_composite
from segmap.masks.policies import OverlapPolicy, UnmatchedPolicy
from segmap.masks.rasterise import RasterStats, rasterise_contours
from segmap.pipeline.inputs import read_inputs
from segmap.pipeline.outputs import OutputTransaction
from segmap.pipeline.report import (
    AnnotationInput,
    ConvertReport,
    ImageInput,
    LabelRecord,
    MapInput,
    OutputRecord,
    OverlapRecord,
    RegionRecord,
    file_sha256,
)

if TYPE_CHECKING:
    from segmap.pipeline.preview import LegendEntry

MASK_NAME = "mask.nii.gz"
IMAGE_NAME = "image.nii.gz"
IMAGE_RESAMPLED_NAME = "image_resampled.nii.gz"
MASK_RESAMPLED_NAME = "mask_resampled.nii.gz"
REPORT_NAME = "report.json"
PREVIEW_NAME = "preview.png"
SEG_NAME = "seg.dcm"

INTERPOLATION_ORDERS = {"linear": 1, "bspline": 3}
"""Image interpolation by name -> spline order (the mask is always nearest neighbour)."""

class ConvertError(SegmapError):
    """Conversion options that do not make sense together, or an unusable output folder."""


ProgressCallback = Callable[[str, float], None]
"""Called with a stage name and the fraction of the conversion done (0..1)."""


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert.

    Attributes:
        spacing: target voxel spacing ``(di, dj, dk)`` in mm along the image's own
            ``i`` (columns), ``j`` (rows) and ``k`` (slices) axes; None keeps the native grid.
        interp: image interpolation when resampling: ``linear`` or ``bspline``.
        overlap: ``order`` (later map line wins) or ``error`` (any overlap fails).
        unmatched: ``skip`` (report and ignore names the map lacks) or ``error``.
        strict_names: compare region names exactly instead of normalised.
        threshold: FRACTIONAL SEG cut-off, 0 < t <= 1.
        mask_only: write only ``mask.nii.gz`` and ``report.json``; no pixel data is read.
        preview: write ``preview.png`` (ignored with ``mask_only``).
        fixup: repair uneven slice spacing or gaps in the series instead of refusing it.
        parallel_read: parse an RTSTRUCT in a forked child while the series headers are
            read here (Linux; falls back to one after the other elsewhere).
        write_seg: also write ``seg.dcm``, the composite mask as a DICOM SEG on the series.
        seg_description: its SeriesDescription (e.g. the model); empty names the map.
    """

    spacing: tuple[float, float, float] | None = None
    interp: str = "linear"
    overlap: str = "order"
    unmatched: str = "skip"
    strict_names: bool = False
    threshold: float = 0.5
    mask_only: bool = False
    preview: bool = True
    fixup: bool = False
    parallel_read: bool = True
    write_seg: bool = False
    seg_description: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.spacing is not None and (
            len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing)
        ):
            problems.append(f"spacing must be three positive numbers in mm, got {self.spacing}")
        if self.interp not in INTERPOLATION_ORDERS:
            problems.append(f"interp must be one of {', '.join(INTERPOLATION_ORDERS)}, "
                            f"got {self.interp!r}")
        if self.overlap not in {p.value for p in OverlapPolicy}:
            problems.append(f"overlap must be one of {', '.join(p.value for p in OverlapPolicy)}"
                            f", got {self.overlap!r}")
        if self.unmatched not in {p.value for p in UnmatchedPolicy}:
            problems.append("unmatched must be one of "
                            f"{', '.join(p.value for p in UnmatchedPolicy)}, "
                            f"got {self.unmatched!r}")
        if not 0.0 < self.threshold <= 1.0:
            problems.append(f"threshold must be above 0 and at most 1, got {self.threshold}")
        if self.mask_only and self.spacing is not None:
            problems.append("mask-only writes only the native mask; drop the spacing or "
                            "mask-only")
        if problems:
            raise ConvertError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options."""
        d = asdict(self)
        d["spacing"] = list(self.spacing) if self.spacing is not None else None
        return d


@dataclass
class ConvertResult:
    """What a conversion produced: file paths by name, the report, the composite labels."""

    out_dir: Path
    files: dict[str, Path]
    report: ConvertReport
    labels_kji: npt.NDArray[np.integer] = field(repr=False)
    grid: VoxelGrid = field(repr=False)


# --- the orchestration ----------------------------------------------------------------


def convert(
    region_map: RegionMap | str | Path,
    image_dir: str | Path,
    rois_path: str | Path,
    out_dir: str | Path,
    options: ConvertOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> ConvertResult:
    """Convert one ROI collection into masks on its image series; see the module doc.

    Args:
        region_map: a :class:`RegionMap` or the path of a ``region2MaskValueMap.txt``.
        image_dir: folder holding the referenced series (may hold others too).
        rois_path: the RTSTRUCT or SEG file.
        out_dir: output folder; created if needed; on failure left as it was.
        options: see :class:`ConvertOptions`.
        progress: optional callback ``(stage, fraction_done)``.

    Raises:
        SegmapError: any problem with the inputs (the message says which file and what
            to do); nothing is written to ``out_dir`` then.
    """
    options = options or ConvertOptions()
    clock = _Clock()
    say = progress or (lambda stage, done: None)
    warnings: list[str] = []
    t_start = time.perf_counter()

    say("reading inputs", 0.0)
    with clock("read_map"):
        rmap, map_path = _region_map(region_map)
    rois_path = Path(rois_path)
    with clock("read_inputs"):
        inputs = read_inputs(rois_path, Path(image_dir), fixup=options.fixup,
                             parallel=options.parallel_read, while_waiting=_load_nifti_writer)
    clock.timings.update(inputs.timings_s)
    info, contour_regions, series = inputs.info, inputs.contour_regions, inputs.series
    warnings.extend(inputs.warnings)
    check_frame_of_reference(info, series)
    say("placing regions", 0.15)
    # The composite's array (78 MB for a 512x512x300 mask) is allocated and its pages
    # faulted in on a helper thread while the regions are placed: numpy's fill runs
    # without the GIL, so the kernel's page zeroing -- ~10 ms, and several times that
    # when the memory is fresh to a virtual machine -- happens on the other core.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-canvas") as helper:
        canvas = helper.submit(_zeroed, series.grid.array_shape, rmap.dtype)
        with clock("place_regions"):
            named, region_details = _place_regions(info, contour_regions, series, options)
        with clock("paint"):
            composite = paint_composite(
                named, rmap,
                overlap=OverlapPolicy(options.overlap),
                unmatched=UnmatchedPolicy(options.unmatched),
                strict_names=options.strict_names,
                grid_shape=series.grid.array_shape,
                out=canvas.result(),
            )
    del named  # the regions' boxes are painted; free them before the image is read
    labels = composite.array
    grid = series.grid
    say("writing outputs", 0.45)
    # Output files are gzip-compressed by one writer thread (ISA-L and zlib release the
    # GIL), so compression overlaps with decoding, resampling and drawing in this thread.
    # The writer is shut down (waiting for its last file) before the transaction ends.
    with OutputTransaction(out_dir) as tx, _Writer(tx, clock) as writer:
        writer.nifti("write_mask", labels, grid, MASK_NAME, "mask", "segmap composite mask")
        if options.write_seg:
            from segmap.pipeline.derived_seg import write_conversion_seg  # loads highdicom

            with clock("write_seg"):
                warnings.extend(write_conversion_seg(
                    tx.path(SEG_NAME), labels, series, rmap, map_path=map_path, annotation=info,
                    description=options.seg_description))
            writer.done(SEG_NAME, "seg", grid, None)
        if not options.mask_only:
            _write_image_outputs(writer, series, labels, rmap, options, clock, info, say)
        outputs = writer.finish()
        report = _build_report(
            rmap, map_path, info, series, options, composite, region_details, outputs,
            clock.timings, warnings, rois_path,
        )
        report.timings_s["total"] = time.perf_counter() - t_start
        report.write(tx.path(REPORT_NAME))
        files = tx.commit()
    say("done", 1.0)
    out = Path(out_dir)
    return ConvertResult(out, {p.name: p for p in files}, report, labels, grid)


def _zeroed(shape: tuple[int, int, int], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """An all-zero array whose memory is already mapped (written once)."""
    array = np.empty(shape, dtype=dtype)
    array.fill(0)
    return array


def _write_image_outputs(
    writer: _Writer,
    series: DicomSeries,
    labels: npt.NDArray[np.integer],
    rmap: RegionMap,
    options: ConvertOptions,
    clock: _Clock,
    info: AnnotationInfo,
    say: ProgressCallback,
) -> None:
    # Imported here: a mask-only conversion needs neither pixel decoders, SciPy's
    # resampling nor Pillow, and a command line run should not pay for loading them.
    from segmap.imaging.pixels import read_pixels
    from segmap.imaging.resample import grid_for_spacing, resample_image, resample_mask
    from segmap.pipeline.preview import render_preview

    grid = series.grid
    with clock("read_pixels"):
        image = read_pixels(series)
    say("writing image", 0.6)
    if options.spacing is None:
        writer.nifti("write_image", image, grid, IMAGE_NAME, "image", "segmap image")
    else:
        dst = grid_for_spacing(grid, options.spacing)
        with clock("resample_image"):
            resampled = resample_image(image, grid, dst, order=INTERPOLATION_ORDERS[options.interp])
        writer.nifti("write_image_resampled", resampled, dst, IMAGE_RESAMPLED_NAME,
                     "image_resampled", f"segmap image, {options.interp} resampled")
        del resampled  # the writer holds it until written
        with clock("resample_mask"):
            mask_r = resample_mask(labels, grid, dst)
        writer.nifti("write_mask_resampled", mask_r, dst, MASK_RESAMPLED_NAME, "mask_resampled",
                     "segmap composite mask, nearest neighbour resampled")
        del mask_r
    if options.preview:
        say("drawing preview", 0.9)
        with clock("preview"):
            render_preview(
                writer.tx.path(PREVIEW_NAME), image, labels, grid, _legend(rmap, labels, grid),
                title=_title(series, info),
                window=(-160.0, 240.0) if series.modality == "CT" else None,
            )
        writer.done(PREVIEW_NAME, "preview", None, None)


class _Writer:
    """Writes NIfTI outputs on one background thread and records them in order."""

    def __init__(self, tx: OutputTransaction, clock: _Clock) -> None:
        self.tx = tx
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-writer")
        self._pending: list[tuple[Future[None] | None, str, str, VoxelGrid | None, Any]] = []

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def nifti(self, stage: str, volume: npt.NDArray[np.generic], grid: VoxelGrid, name: str,
              kind: str, description: str) -> None:
        """Queue ``volume`` to be written as ``name`` (the writer keeps a reference)."""
        future = self._pool.submit(self._timed, stage, volume, grid, self.tx.path(name),
                                   description)
        self._pending.append((future, name, kind, grid, volume.dtype))

    def done(self, name: str, kind: str, grid: VoxelGrid | None, dtype: Any) -> None:
        """Record a file written directly into the staging folder."""
        self._pending.append((None, name, kind, grid, dtype))

    def finish(self) -> list[OutputRecord]:
        """Wait for every queued file (raising its error, if any); their records."""
        records = []
        for future, name, kind, grid, dtype in self._pending:
            if future is not None:
                future.result()
            records.append(_record(self.tx.path(name), kind, grid, dtype))
        return records

    def _timed(self, stage: str, volume: npt.NDArray[np.generic], grid: VoxelGrid, path: Path,
               description: str) -> None:
        write_nifti = _load_nifti_writer()
        with self._clock(stage):
            write_nifti(volume, grid, path, description=description)


def _load_nifti_writer() -> Callable[..., None]:
    """``segmap.imaging.nifti.write_nifti``, importing it (and nibabel, ~30 ms) if needed.

    Imported on demand rather than with this module so that :func:`convert` can have it
    imported while the process would otherwise wait for the RTSTRUCT being parsed in a
    child (``read_inputs(while_waiting=...)``); the writer thread calls it otherwise.
    """
    from segmap.imaging.nifti import write_nifti

    return write_nifti


# --- inputs -----------------------------------------------------------------------------


def _region_map(region_map: RegionMap | str | Path) -> tuple[RegionMap, Path | None]:
    if isinstance(region_map, RegionMap):
        return region_map, None
    path = Path(region_map)
    return read_region_map(path), path


# --- regions ----------------------------------------------------------------------------


@dataclass
class _RegionDetail:
    source: str
    number: int
    name: str
    voxels: int
    contours: dict[str, Any] | None = None
    frames_used: int | None = None


def _place_regions(
    info: AnnotationInfo,
    contour_regions: list[ContourRegion] | None,
    series: DicomSeries,
    options: ConvertOptions,
) -> tuple[list[NamedMask], list[_RegionDetail]]:
    if contour_regions is not None:
        return _rasterise_all(contour_regions, series)
    from segmap.annotations.seg import read_seg  # highdicom: only for SEG files

    _, segments = read_seg(Path(info.path), series, threshold=options.threshold)
    return _segments(segments)


def _rasterise_all(
    regions: list[ContourRegion], series: DicomSeries
) -> tuple[list[NamedMask], list[_RegionDetail]]:
    missing = contours_on_missing_slices(regions, series)
    named: list[NamedMask] = []
    details: list[_RegionDetail] = []
    for roi in regions:
        mask, stats = rasterise_contours(roi.contours, series.grid)
        named.append(NamedMask(name=roi.name, number=roi.number, mask=mask))
        details.append(_RegionDetail("ROI", roi.number, roi.name, mask.voxel_count,
                                     contours=_contour_counts(stats, missing.get(roi.number, 0))))
    return named, details


def _contour_counts(stats: RasterStats, missing_refs: int) -> dict[str, Any]:
    return {
        "total": stats.contours_total,
        "used": stats.used,
        "skipped": stats.skipped,
        "skipped_by_reason": {
            "off_every_slice_plane": stats.skipped_off_plane,
            "open": stats.skipped_open,
            "point_or_degenerate": stats.skipped_point,
            "not_planar": stats.skipped_non_planar,
        },
        "clipped_at_image_edge": stats.clipped,
        "referencing_images_not_in_series": missing_refs,
        "slices": stats.slices_touched,
        "plane_tolerance_mm": stats.plane_tolerance_mm,
    }


def _segments(segments: list[MaskRegion]) -> tuple[list[NamedMask], list[_RegionDetail]]:
    named = [NamedMask(name=s.name, number=s.number, mask=s.mask) for s in segments]
    details = [
        _RegionDetail("segment", s.number, s.name, s.mask.voxel_count, frames_used=s.frames_used)
        for s in segments
    ]
    return named, details


# --- report -----------------------------------------------------------------------------


def _build_report(
    rmap: RegionMap,
    map_path: Path | None,
    info: AnnotationInfo,
    series: DicomSeries,
    options: ConvertOptions,
    composite: CompositeResult,
    details: list[_RegionDetail],
    outputs: list[OutputRecord],
    timings: dict[str, float],
    warnings: list[str],
    rois_path: Path,
) -> ConvertReport:
    grid = series.grid
    vv = grid.voxel_volume_mm3
    painted = {(p.number, p.name): p for p in composite.regions}
    suggestions = {(u.number, u.name): list(u.suggestions) for u in composite.unmatched}
    regions = []
    for d in details:
        p = painted.get((d.number, d.name))
        status = "unmatched" if p is None else "painted" if d.voxels else "empty"
        regions.append(RegionRecord(
            source=d.source, number=d.number, name=d.name,
            matched_label=p.label if p else None, value=p.value if p else None,
            status=status, voxels=d.voxels, volume_mm3=round(d.voxels * vv, 3),
            painted_voxels=p.visible_voxels if p else 0, contours=d.contours,
            frames_used=d.frames_used,
            suggestions=suggestions.get((d.number, d.name), []),
        ))
    labels = [
        LabelRecord(lab.label, lab.value, lab.present, lab.visible_voxels,
                    round(lab.visible_voxels * vv, 3))
        for lab in composite.labels
    ]
    unmatched = [
        {"name": r.name, "number": r.number, "source": r.source, "suggestions": r.suggestions}
        for r in regions if r.status == "unmatched"
    ]
    overlaps = [
        OverlapRecord(o.first_label, o.second_label, o.first_value, o.second_value, o.voxels,
                      o.winner)
        for o in composite.overlaps
    ]
    return ConvertReport(
        inputs={
            "image": ImageInput(
                folder=str(series.files[0].parent) if series.files else "",
                study_instance_uid=series.study_instance_uid,
                series_instance_uid=series.series_instance_uid,
                frame_of_reference_uid=series.frame_of_reference_uid,
                modality=series.modality, slices=len(series.files),
                series_description=series.series_description, patient_id=series.patient_id,
                study_date=series.study_date,
            ),
            "annotation": AnnotationInput(
                path=str(rois_path), modality=info.modality,
                sop_instance_uid=info.sop_instance_uid,
                series_instance_uid=info.series_instance_uid,
                study_instance_uid=info.study_instance_uid,
                frame_of_reference_uid=info.frame_of_reference_uid,
                referenced_series_uids=list(info.referenced_series_uids),
                sha256=file_sha256(rois_path),
            ),
            "grid": grid.to_dict(),
        },
        region_map=MapInput(
            path=str(map_path) if map_path else None, sha256=rmap.sha256,
            dtype=rmap.dtype.name,
            regions=[{"label": r.label, "value": r.value} for r in rmap.regions],
            shared_values={str(v): list(ls) for v, ls in rmap.shared_values().items()},
        ),
        options=options.to_dict(),
        regions=regions,
        labels=labels,
        unmatched=unmatched,
        absent_labels=list(composite.absent_labels),
        overlaps=overlaps,
        fixups=list(series.fixups),
        outputs=outputs,
        timings_s=dict(timings),
        warnings=warnings,
        created_utc=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _record(path: Path, kind: str, grid: VoxelGrid | None, dtype: Any) -> OutputRecord:
    return OutputRecord(
        name=path.name, kind=kind, grid=grid.to_dict() if grid is not None else None,
        dtype=np.dtype(dtype).name if dtype is not None else None,
        bytes=path.stat().st_size, sha256=file_sha256(path),
    )


def _legend(rmap: RegionMap, labels: npt.NDArray[np.integer], grid: VoxelGrid
            ) -> list[LegendEntry]:
    from segmap.labelmap.palette import colour_for_value
    from segmap.pipeline.preview import LegendEntry

    counts = np.bincount(labels.ravel(), minlength=max(rmap.values) + 1)
    by_value: dict[int, list[str]] = {}
    for r in rmap.regions:
        by_value.setdefault(r.value, []).append(r.label)
    return [
        LegendEntry(v, tuple(names), colour_for_value(v)[:3], int(counts[v]),
                    float(counts[v]) * grid.voxel_volume_mm3)
        for v, names in by_value.items() if counts[v]
    ]


def _title(series: DicomSeries, info: AnnotationInfo) -> str:
    parts = [series.patient_id, series.modality, series.series_description,
             f"{info.modality} {info.label}".strip()]
    return "  ·  ".join(p for p in parts if p)


class _Clock:
    """Wall-clock seconds per stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t
