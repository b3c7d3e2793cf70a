"""annotations: RTSTRUCT and DICOM SEG readers that yield named regions for a scan.

* :func:`read_annotation_info` — what an ROI collection file is and what it references
  (header only; used to pick the referenced scan).
* :func:`read_rtstruct` — ROIs as planar contours in LPS mm; :func:`contours_on_missing_slices`
  counts contours naming images absent from the series.
* :func:`read_seg` — segments as boolean masks on the scan's grid (BINARY, FRACTIONAL,
  LABELMAP), using only the scan's headers.
* :func:`check_frame_of_reference` — refuse an annotation from another frame of reference.
"""

from typing import TYPE_CHECKING, Any

from segmap.annotations.info import check_frame_of_reference, read_annotation_info
from segmap.annotations.rtstruct import contours_on_missing_slices, read_rtstruct
from segmap.annotations.types import AnnotationInfo, ContourRegion, MaskRegion, PlanarContour

if TYPE_CHECKING:
    from segmap.annotations.seg import DEFAULT_THRESHOLD, read_seg

__all__ = [
    "DEFAULT_THRESHOLD",
    "AnnotationInfo",
    "ContourRegion",
    "MaskRegion",
    "PlanarContour",
    "check_frame_of_reference",
    "contours_on_missing_slices",
    "read_annotation_info",
    "read_rtstruct",
    "read_seg",
]


def __getattr__(name: str) -> Any:
    # The SEG reader is imported on first use: an RTSTRUCT conversion never needs it,
    # and importing it with the package cost a command-line run ~6 ms.
    if name in ("DEFAULT_THRESHOLD", "read_seg"):
        from segmap.annotations import seg

        return getattr(seg, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
