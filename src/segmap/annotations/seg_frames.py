"""The header of a DICOM SEG: its segments and, per frame, segment, sources and plane.

Only attributes are read here (no pixel data). Per-frame functional groups override the
shared ones, as the multi-frame IOD prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from segmap.annotations._dicom import describe_tag, items, reading, required, text
from segmap.annotations.info import source_instance_uids
from segmap.errors import AnnotationError
from segmap.imaging.sop_classes import LABELMAP_SEG_SOP_CLASS

SEGMENTATION_TYPES = ("BINARY", "FRACTIONAL", "LABELMAP")


@dataclass(frozen=True)
class SegmentDescription:
    """One item of SegmentSequence."""

    number: int
    label: str
    color_rgb: tuple[int, int, int] | None


@dataclass(frozen=True, eq=False)
class FramePlane:
    """Where a frame lies, in LPS mm; any part may be absent from a damaged file.

    Attributes:
        position_lps: centre of the frame's first pixel (ImagePositionPatient).
        row_direction: unit vector along a row, i.e. of increasing column index.
        column_direction: unit vector down a column, i.e. of increasing row index.
        pixel_spacing: ``(row spacing, column spacing)`` in mm, as DICOM orders them.
        spacing_between_slices: SpacingBetweenSlices in mm, if the writer gave it.
    """

    position_lps: npt.NDArray[np.float64] | None
    row_direction: npt.NDArray[np.float64] | None
    column_direction: npt.NDArray[np.float64] | None
    pixel_spacing: tuple[float, float] | None
    spacing_between_slices: float | None


@dataclass(frozen=True, eq=False)
class SegFrame:
    """One frame: its 0-based index in the pixel data, segment, source images and plane."""

    index: int
    segment_number: int | None  # None in a LABELMAP, where pixel values are segment numbers
    source_uids: tuple[str, ...]
    plane: FramePlane


@dataclass(frozen=True, eq=False)
class SegHeader:
    """What :func:`read_seg_header` found."""

    segmentation_type: str
    rows: int
    columns: int
    max_fractional_value: int | None
    pixel_padding_value: int | None
    segments: tuple[SegmentDescription, ...]
    frames: tuple[SegFrame, ...]


def read_seg_header(ds: Dataset, path: Path) -> SegHeader:
    """Segments and frames of a SEG dataset; AnnotationError naming the tag when damaged."""
    seg_type = _segmentation_type(ds, path)
    with reading(path, "Rows / Columns / NumberOfFrames"):
        rows = int(required(ds, "Rows", path))
        columns = int(required(ds, "Columns", path))
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    max_fraction = None
    if seg_type == "FRACTIONAL":
        with reading(path, describe_tag("MaximumFractionalValue")):
            max_fraction = int(required(ds, "MaximumFractionalValue", path))
        if max_fraction < 1:
            raise AnnotationError(
                f"{path}: {describe_tag('MaximumFractionalValue')} is {max_fraction}; it must be "
                "at least 1. The file is damaged, export the segmentation again"
            )
    padding = None
    if "PixelPaddingValue" in ds:
        with reading(path, describe_tag("PixelPaddingValue")):
            padding = int(ds.PixelPaddingValue)
    segments = _segments(ds, path)
    frames = _frames(ds, path, n_frames, labelmap=seg_type == "LABELMAP")
    known = {s.number for s in segments}
    for f in frames:
        if f.segment_number is not None and f.segment_number not in known:
            raise AnnotationError(
                f"{path}: frame {f.index + 1} belongs to segment {f.segment_number}, which "
                f"{describe_tag('SegmentSequence')} does not describe; the file is damaged, "
                "export the segmentation again"
            )
    return SegHeader(seg_type, rows, columns, max_fraction, padding, segments, frames)


def _segmentation_type(ds: Dataset, path: Path) -> str:
    seg_type = text(ds, "SegmentationType").upper()
    if not seg_type and text(ds, "SOPClassUID") == LABELMAP_SEG_SOP_CLASS:
        seg_type = "LABELMAP"
    if seg_type not in SEGMENTATION_TYPES:
        raise AnnotationError(
            f"{path}: {describe_tag('SegmentationType')} is {seg_type or 'missing'!r}; segmap "
            f"reads {', '.join(SEGMENTATION_TYPES)} segmentations"
        )
    return seg_type


def _segments(ds: Dataset, path: Path) -> tuple[SegmentDescription, ...]:
    if "SegmentSequence" not in ds:
        raise AnnotationError(
            f"{path}: {describe_tag('SegmentSequence')} is missing, so the segments have no "
            "names; the file is incomplete, export the segmentation again"
        )
    out: list[SegmentDescription] = []
    for pos, seg in enumerate(items(ds, "SegmentSequence"), start=1):
        where = f"item {pos} of SegmentSequence"
        with reading(path, f"{describe_tag('SegmentNumber')} in {where}"):
            number = int(required(seg, "SegmentNumber", path, where))
        if any(s.number == number for s in out):
            raise AnnotationError(
                f"{path}: SegmentNumber {number} appears twice in SegmentSequence; the file is "
                "damaged, export the segmentation again"
            )
        with reading(path, f"{describe_tag('SegmentLabel')} of segment {number}"):
            label = text(seg, "SegmentLabel")
        out.append(SegmentDescription(number, label, _segment_color(seg)))
    return tuple(out)


def _segment_color(seg: Dataset) -> tuple[int, int, int] | None:
    """RecommendedDisplayCIELabValue as sRGB 0-255; None when absent or malformed (optional)."""
    # Imported here: importing highdicom costs about half a second, which every command
    # line run would pay even when it converts no SEG.
    from highdicom.color import CIELabColor

    try:
        value = seg.get("RecommendedDisplayCIELabValue")
        if value is None or len(value) != 3:
            return None
        return CIELabColor.from_dicom_value([int(v) for v in value]).to_rgb(clip=True)
    except (TypeError, ValueError):
        return None


def _frames(ds: Dataset, path: Path, n_frames: int, *, labelmap: bool) -> tuple[SegFrame, ...]:
    shared_items = items(ds, "SharedFunctionalGroupsSequence")
    shared = shared_items[0] if shared_items else Dataset()
    per_frame = items(ds, "PerFrameFunctionalGroupsSequence")
    if not per_frame and n_frames > 1:
        raise AnnotationError(
            f"{path}: {describe_tag('PerFrameFunctionalGroupsSequence')} is missing, so the "
            f"{n_frames} frames cannot be told apart (a TILED_FULL slide segmentation?); "
            "segmap reads SEGs of image series with one functional group item per frame"
        )
    if per_frame and len(per_frame) != n_frames:
        raise AnnotationError(
            f"{path}: {describe_tag('PerFrameFunctionalGroupsSequence')} has {len(per_frame)} "
            f"items for {n_frames} frames; the file is damaged, export the segmentation again"
        )
    frames = []
    for index in range(n_frames):
        own = per_frame[index] if per_frame else Dataset()
        with reading(path, f"the functional groups of frame {index + 1}"):
            frames.append(_frame(index, own, shared, labelmap=labelmap))
    return tuple(frames)


def _first_item(own: Dataset, shared: Dataset, keyword: str) -> Dataset | None:
    """First item of a functional-group macro, per-frame taking precedence over shared."""
    for group in (own, shared):
        seq = items(group, keyword)
        if seq:
            return seq[0]
    return None


def _frame(index: int, own: Dataset, shared: Dataset, *, labelmap: bool) -> SegFrame:
    segment = None
    if not labelmap:
        ident = _first_item(own, shared, "SegmentIdentificationSequence")
        if ident is not None and "ReferencedSegmentNumber" in ident:
            segment = int(ident.ReferencedSegmentNumber)
        else:
            raise ValueError(
                f"{describe_tag('SegmentIdentificationSequence')} > ReferencedSegmentNumber "
                "is missing"
            )
    sources = source_instance_uids(own) or source_instance_uids(shared)
    return SegFrame(index, segment, tuple(s for s in sources if s), _plane(own, shared))


def _plane(own: Dataset, shared: Dataset) -> FramePlane:
    position = orientation = None
    spacing = between = None
    pos_item = _first_item(own, shared, "PlanePositionSequence")
    if pos_item is not None and "ImagePositionPatient" in pos_item:
        position = np.asarray([float(v) for v in pos_item.ImagePositionPatient], dtype=float)
    ori_item = _first_item(own, shared, "PlaneOrientationSequence")
    if ori_item is not None and "ImageOrientationPatient" in ori_item:
        orientation = np.asarray([float(v) for v in ori_item.ImageOrientationPatient], dtype=float)
        if orientation.shape != (6,):
            raise ValueError(f"{describe_tag('ImageOrientationPatient')} must hold 6 numbers")
    measures = _first_item(own, shared, "PixelMeasuresSequence")
    if measures is not None:
        if "PixelSpacing" in measures:
            ps = [float(v) for v in measures.PixelSpacing]
            if len(ps) != 2 or min(ps) <= 0:
                raise ValueError(f"{describe_tag('PixelSpacing')} must hold 2 positive numbers")
            spacing = (ps[0], ps[1])
        if measures.get("SpacingBetweenSlices") not in (None, ""):
            between = abs(float(measures.SpacingBetweenSlices)) or None
    if position is not None and position.shape != (3,):
        raise ValueError(f"{describe_tag('ImagePositionPatient')} must hold 3 numbers")
    row_dir = col_dir = None
    if orientation is not None:
        row_dir = orientation[:3] / np.linalg.norm(orientation[:3])
        col_dir = orientation[3:] / np.linalg.norm(orientation[3:])
    return FramePlane(position, row_dir, col_dir, spacing, between)
