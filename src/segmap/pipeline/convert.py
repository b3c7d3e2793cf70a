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

This module is the orchestration; the parts live beside it: :mod:`.inputs` (reading),
:mod:`.regions` (placing regions), :mod:`.writer` (the background NIfTI writer),
:mod:`.report_build` (the report) and :mod:`.preview` (the picture).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from segmap.annotations.info import check_frame_of_reference
from segmap.annotations.types import AnnotationInfo
from segmap.errors import SegmapError
from segmap.imaging.budget import check_resampled_budget, spacing_problem
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.series import DicomSeries
from segmap.labelmap import RegionMap, read_region_map
from segmap.masks.composite import paint_composite
from segmap.masks.policies import OverlapPolicy, UnmatchedPolicy
from segmap.pipeline.inputs import read_inputs
from segmap.pipeline.outputs import OutputTransaction
from segmap.pipeline.regions import place_regions
from segmap.pipeline.report import ConvertReport
from segmap.pipeline.report_build import build_report
from segmap.pipeline.speedups import speedups_enabled
from segmap.pipeline.timing import StageClock
from segmap.pipeline.writer import OutputWriter, load_nifti_writer

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
            read here (Linux; falls back to one after the other elsewhere, and when
            ``SEGMAP_NO_SPEEDUPS=1``: see :mod:`segmap.pipeline.speedups`).
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
        if self.spacing is not None and (problem := spacing_problem(self.spacing)):
            problems.append(problem)
        if self.interp not in INTERPOLATION_ORDERS:
            problems.append(
                f"interp must be one of {', '.join(INTERPOLATION_ORDERS)}, got {self.interp!r}"
            )
        if self.overlap not in {p.value for p in OverlapPolicy}:
            problems.append(
                f"overlap must be one of {', '.join(p.value for p in OverlapPolicy)}"
                f", got {self.overlap!r}"
            )
        if self.unmatched not in {p.value for p in UnmatchedPolicy}:
            problems.append(
                "unmatched must be one of "
                f"{', '.join(p.value for p in UnmatchedPolicy)}, "
                f"got {self.unmatched!r}"
            )
        if not 0.0 < self.threshold <= 1.0:
            problems.append(f"threshold must be above 0 and at most 1, got {self.threshold}")
        if self.mask_only and self.spacing is not None:
            problems.append("mask-only writes only the native mask; drop the spacing or mask-only")
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
    clock = StageClock()
    say = progress or (lambda stage, done: None)
    warnings: list[str] = []
    t_start = time.perf_counter()

    say("reading inputs", 0.0)
    with clock("read_map"):
        rmap, map_path = _region_map(region_map)
    rois_path = Path(rois_path)
    with clock("read_inputs"):
        inputs = read_inputs(
            rois_path,
            Path(image_dir),
            fixup=options.fixup,
            parallel=options.parallel_read,
            while_waiting=load_nifti_writer,
        )
    clock.timings.update(inputs.timings_s)
    info, contour_regions, series = inputs.info, inputs.contour_regions, inputs.series
    warnings.extend(inputs.warnings)
    check_frame_of_reference(info, series)
    if options.spacing is not None and not options.mask_only:
        # Before the composite, the pixels or any resampled array is allocated: a spacing
        # too fine for this scan's extent fails here with the size it would have had.
        check_resampled_budget(series.grid.size, series.grid.spacing, options.spacing)
    say("placing regions", 0.15)
    # The composite's array (78 MB for a 512x512x300 mask) is allocated and its pages
    # faulted in on a helper thread while the regions are placed: numpy's fill runs
    # without the GIL, so the kernel's page zeroing -- ~10 ms, and several times that
    # when the memory is fresh to a virtual machine -- happens on the other core.
    # Without speedups (segmap.pipeline.speedups) the painter allocates it itself.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmap-canvas") as helper:
        canvas = (
            helper.submit(_zeroed, series.grid.array_shape, rmap.dtype)
            if speedups_enabled()
            else None
        )
        with clock("place_regions"):
            named, region_details = place_regions(
                info, contour_regions, series, threshold=options.threshold
            )
        with clock("paint"):
            composite = paint_composite(
                named,
                rmap,
                overlap=OverlapPolicy(options.overlap),
                unmatched=UnmatchedPolicy(options.unmatched),
                strict_names=options.strict_names,
                grid_shape=series.grid.array_shape,
                out=canvas.result() if canvas is not None else None,
            )
    del named  # the regions' boxes are painted; free them before the image is read
    labels = composite.array
    grid = series.grid
    say("writing outputs", 0.45)
    # Output files are compressed on the writer's thread while this one goes on (see
    # segmap.pipeline.writer); it is shut down before the transaction ends.
    with OutputTransaction(out_dir) as tx, OutputWriter(tx, clock) as writer:
        writer.nifti("write_mask", labels, grid, MASK_NAME, "mask", "segmap composite mask")
        if options.write_seg:
            from segmap.pipeline.derived_seg import write_conversion_seg  # loads highdicom

            with clock("write_seg"):
                warnings.extend(
                    write_conversion_seg(
                        tx.path(SEG_NAME),
                        labels,
                        series,
                        rmap,
                        map_path=map_path,
                        annotation=info,
                        description=options.seg_description,
                    )
                )
            writer.done(SEG_NAME, "seg", grid, None)
        if not options.mask_only:
            _write_image_outputs(writer, series, labels, rmap, options, clock, info, say)
        outputs = writer.finish()
        report = build_report(
            rmap=rmap,
            map_path=map_path,
            info=info,
            series=series,
            options=options.to_dict(),
            composite=composite,
            details=region_details,
            outputs=outputs,
            timings=clock.timings,
            warnings=warnings,
            rois_path=rois_path,
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


def _region_map(region_map: RegionMap | str | Path) -> tuple[RegionMap, Path | None]:
    if isinstance(region_map, RegionMap):
        return region_map, None
    path = Path(region_map)
    return read_region_map(path), path


def _write_image_outputs(
    writer: OutputWriter,
    series: DicomSeries,
    labels: npt.NDArray[np.integer],
    rmap: RegionMap,
    options: ConvertOptions,
    clock: StageClock,
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
        writer.nifti(
            "write_image_resampled",
            resampled,
            dst,
            IMAGE_RESAMPLED_NAME,
            "image_resampled",
            f"segmap image, {options.interp} resampled",
        )
        del resampled  # the writer holds it until written
        with clock("resample_mask"):
            mask_r = resample_mask(labels, grid, dst)
        writer.nifti(
            "write_mask_resampled",
            mask_r,
            dst,
            MASK_RESAMPLED_NAME,
            "mask_resampled",
            "segmap composite mask, nearest neighbour resampled",
        )
        del mask_r
    if options.preview:
        say("drawing preview", 0.9)
        with clock("preview"):
            render_preview(
                writer.tx.path(PREVIEW_NAME),
                image,
                labels,
                grid,
                _legend(rmap, labels, grid),
                title=_title(series, info),
                window=(-160.0, 240.0) if series.modality == "CT" else None,
            )
        writer.done(PREVIEW_NAME, "preview", None, None)


def _legend(rmap: RegionMap, labels: npt.NDArray[np.integer], grid: VoxelGrid) -> list[LegendEntry]:
    from segmap.labelmap.palette import colour_for_value
    from segmap.pipeline.preview import LegendEntry

    counts = np.bincount(labels.ravel(), minlength=max(rmap.values) + 1)
    by_value: dict[int, list[str]] = {}
    for r in rmap.regions:
        by_value.setdefault(r.value, []).append(r.label)
    return [
        LegendEntry(
            v,
            tuple(names),
            colour_for_value(v)[:3],
            int(counts[v]),
            float(counts[v]) * grid.voxel_volume_mm3,
        )
        for v, names in by_value.items()
        if counts[v]
    ]


def _title(series: DicomSeries, info: AnnotationInfo) -> str:
    parts = [
        series.patient_id,
        series.modality,
        series.series_description,
        f"{info.modality} {info.label}".strip(),
    ]
    return "  ·  ".join(p for p in parts if p)
