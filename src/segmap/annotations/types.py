"""Value types for annotations: named regions as contours (RTSTRUCT) or masks (SEG).

Coordinates are patient LPS in millimetres; mask arrays are indexed ``[k, j, i]`` on the
image grid (see :mod:`segmap.imaging.grid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from segmap.imaging.boxmask import BoxMask


@dataclass(frozen=True, eq=False)
class PlanarContour:
    """One RTSTRUCT contour.

    Attributes:
        points_lps: ``(N, 3)`` vertices in LPS mm.
        geometric_type: DICOM ContourGeometricType (``CLOSED_PLANAR``, ``OPEN_PLANAR``,
            ``POINT``, ``OPEN_NONPLANAR``).
        referenced_sop_instance_uid: the image the contour says it lies on, if given.
    """

    points_lps: npt.NDArray[np.float64]
    geometric_type: str = "CLOSED_PLANAR"
    referenced_sop_instance_uid: str | None = None


@dataclass(frozen=True, eq=False)
class ContourRegion:
    """An RTSTRUCT ROI: its number and name in the file, and its contours."""

    number: int
    name: str
    contours: tuple[PlanarContour, ...]
    color_rgb: tuple[int, int, int] | None = None
    frame_of_reference_uid: str | None = None


@dataclass(frozen=True, eq=False)
class MaskRegion:
    """A SEG segment already placed on the image grid.

    Attributes:
        number: SegmentNumber in the file (never a mask value; the region map decides).
        name: SegmentLabel.
        mask: the segment's voxels on the referenced image grid, cropped to its box.
        frames_used: how many frames of this segment were placed on the grid.
        frames_skipped: frames of this segment that fell on no slice of the image (for
            example frames whose source slice is missing from the series).
        frames_resampled: frames placed by nearest-neighbour resampling because the SEG's
            grid differs from the image's.
    """

    number: int
    name: str
    mask: BoxMask
    color_rgb: tuple[int, int, int] | None = None
    frames_used: int = 0
    frames_skipped: int = 0
    frames_resampled: int = 0


@dataclass(frozen=True, eq=False)
class AnnotationInfo:
    """Identity of an ROI collection file and what it references."""

    path: str
    modality: str  # "RTSTRUCT" or "SEG"
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    referenced_series_uids: tuple[str, ...]
    referenced_sop_instance_uids: tuple[str, ...] = field(default_factory=tuple)
    # Additive fields (annotations readers); defaults keep older constructors valid.
    sop_class_uid: str = ""
    label: str = ""  # StructureSetLabel (RTSTRUCT) or ContentLabel (SEG)
    manufacturer: str = ""
    segmentation_type: str = ""  # SEG only: BINARY, FRACTIONAL or LABELMAP
    frame_of_reference_uids: tuple[str, ...] = field(default_factory=tuple)
    """Every frame of reference the regions are drawn in (RTSTRUCT ROIs may name several)."""
    region_names: tuple[str, ...] = field(default_factory=tuple)
    """RTSTRUCT ROI names or SEG segment labels, in file order (duplicates kept)."""
