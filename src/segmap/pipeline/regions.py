"""Placing an annotation's regions on the series grid, with what the report says of each.

An RTSTRUCT's ROIs are rasterised from their contours (:mod:`segmap.masks.rasterise`),
counting the contours used, skipped (by reason) and clipped; a SEG's segments are read
onto the grid by :func:`segmap.annotations.seg.read_seg`. Either way the result is one
:class:`~segmap.masks.composite.NamedMask` per region for the painter and one
:class:`RegionDetail` per region for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segmap.annotations.rtstruct import contours_on_missing_slices
from segmap.annotations.types import AnnotationInfo, ContourRegion, MaskRegion
from segmap.imaging.series import DicomSeries
from segmap.masks.composite import NamedMask
from segmap.masks.rasterise import RasterStats, rasterise_contours
from segmap.pipeline.report import ContourCounts


@dataclass
class RegionDetail:
    """One region as placed: its own voxel count on the native grid and how it was made.

    ``source`` is ``ROI`` (RTSTRUCT) or ``segment`` (SEG); ``contours`` holds the
    RTSTRUCT contour counts, ``frames_used`` the SEG frames that held the segment.
    """

    source: str
    number: int
    name: str
    voxels: int
    contours: ContourCounts | None = None
    frames_used: int | None = None


def place_regions(
    info: AnnotationInfo,
    contour_regions: list[ContourRegion] | None,
    series: DicomSeries,
    *,
    threshold: float,
) -> tuple[list[NamedMask], list[RegionDetail]]:
    """Every region of the annotation on ``series``' grid, and its details.

    ``contour_regions`` are the RTSTRUCT's ROIs (None for a SEG, which is read from
    ``info.path`` here); ``threshold`` is the FRACTIONAL SEG cut-off.
    """
    if contour_regions is not None:
        return _rasterise_all(contour_regions, series)
    from segmap.annotations.seg import read_seg  # highdicom: only for SEG files

    _, segments = read_seg(Path(info.path), series, threshold=threshold)
    return _segments(segments)


def _rasterise_all(
    regions: list[ContourRegion], series: DicomSeries
) -> tuple[list[NamedMask], list[RegionDetail]]:
    missing = contours_on_missing_slices(regions, series)
    named: list[NamedMask] = []
    details: list[RegionDetail] = []
    for roi in regions:
        mask, stats = rasterise_contours(roi.contours, series.grid)
        named.append(NamedMask(name=roi.name, number=roi.number, mask=mask))
        details.append(
            RegionDetail(
                "ROI",
                roi.number,
                roi.name,
                mask.voxel_count,
                contours=_contour_counts(stats, missing.get(roi.number, 0)),
            )
        )
    return named, details


def _contour_counts(stats: RasterStats, missing_refs: int) -> ContourCounts:
    return ContourCounts(
        total=stats.contours_total,
        used=stats.used,
        skipped=stats.skipped,
        skipped_by_reason={
            "off_every_slice_plane": stats.skipped_off_plane,
            "open": stats.skipped_open,
            "point_or_degenerate": stats.skipped_point,
            "not_planar": stats.skipped_non_planar,
        },
        clipped_at_image_edge=stats.clipped,
        referencing_images_not_in_series=missing_refs,
        slices=stats.slices_touched,
        plane_tolerance_mm=stats.plane_tolerance_mm,
    )


def _segments(segments: list[MaskRegion]) -> tuple[list[NamedMask], list[RegionDetail]]:
    named = [NamedMask(name=s.name, number=s.number, mask=s.mask) for s in segments]
    details = [
        RegionDetail("segment", s.number, s.name, s.mask.voxel_count, frames_used=s.frames_used)
        for s in segments
    ]
    return named, details
