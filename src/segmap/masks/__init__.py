"""Masks: contour rasterisation and the composite painter with its policies."""

from segmap.masks.boxops import union_masks
from segmap.masks.composite import (
    CompositeResult,
    LabelPaint,
    NamedMask,
    Overlap,
    PaintedRegion,
    UnmatchedName,
    paint_composite,
)
from segmap.masks.policies import OverlapPolicy, UnmatchedPolicy
from segmap.masks.rasterise import RasterStats, default_plane_tolerance_mm, rasterise_contours

__all__ = [
    "CompositeResult",
    "LabelPaint",
    "NamedMask",
    "Overlap",
    "OverlapPolicy",
    "PaintedRegion",
    "RasterStats",
    "UnmatchedName",
    "UnmatchedPolicy",
    "default_plane_tolerance_mm",
    "paint_composite",
    "rasterise_contours",
    "union_masks",
]
