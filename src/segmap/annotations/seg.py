"""DICOM SEG reading: every segment as a boolean mask on the referenced image's grid.

BINARY, FRACTIONAL (thresholded) and LABELMAP segmentations are read; frames are placed
through :mod:`segmap.annotations.seg_placement` (by position, or by referenced source
image when the position is absent; resampled with nearest neighbour when the SEG's grid
differs from the image's). Only the image series' headers are used, never its pixels.

Frames are decoded one at a time with pydicom (which unpacks 1-bit frames that do not
start on a byte boundary and decodes compressed transfer syntaxes). highdicom's volume
and source-instance helpers are not used: they need the spatial-locations flag that
some writers omit, build the whole volume at once, and cannot place frames on a series
with uneven spacing or count frames whose slice is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.pixels import iter_pixels
from pydicom.uid import ExplicitVRLittleEndian

from segmap.annotations._dicom import describe_tag, open_dataset
from segmap.annotations.info import annotation_info_from_dataset, check_frame_of_reference
from segmap.annotations.seg_frames import SegFrame, SegHeader, read_seg_header
from segmap.annotations.seg_placement import (
    ScanSlices,
    place_frame,
    resample_frame,
    seg_slice_spacing,
)
from segmap.annotations.seg_rle_bits import is_rle_bit_packed, iter_rle_bit_frames
from segmap.annotations.types import AnnotationInfo, MaskRegion
from segmap.errors import AnnotationError
from segmap.imaging.boxmask import BoxMask
from segmap.imaging.series import DicomSeries

_DEFER_BYTES = 64 * 1024
"""Values larger than this (the pixel data) are measured, not read, with the header."""

DEFAULT_THRESHOLD = 0.5
"""FRACTIONAL pixels count as inside when value / MaximumFractionalValue >= this."""


def read_seg(
    path: Path, series: DicomSeries, *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[AnnotationInfo, list[MaskRegion]]:
    """Read a SEG and place each segment on ``series.grid`` (arrays ``[k, j, i]``).

    Segments come back in SegmentSequence order, each as a :class:`MaskRegion` whose mask
    is cropped to its bounding box; a LABELMAP's segment 0 (background) is not a region,
    and pixels equal to PixelPaddingValue belong to no segment. ``threshold`` (0 < t <= 1)
    applies to FRACTIONAL segmentations only. Frames that land on no slice of the series
    are skipped and counted per segment. Raises :class:`AnnotationError` when the file is
    not a SEG, is damaged, or lies in another frame of reference than the series.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the FRACTIONAL threshold must be in (0, 1], got {threshold}")
    path = Path(path)
    ds = open_dataset(path, stop_before_pixels=False, defer_size=_DEFER_BYTES)
    info = annotation_info_from_dataset(ds, path)
    if info.modality != "SEG":
        raise AnnotationError(
            f"{path}: this is an {info.modality}, not a SEG; read it as an RTSTRUCT"
        )
    check_frame_of_reference(info, series)
    header = read_seg_header(ds, path)
    _check_pixel_data_length(ds, header, path)
    del ds
    return info, _place_segments(path, header, series, threshold)


class _SegmentPieces:
    """The slice blocks found for one segment, assembled into a BoxMask at the end.

    Blocks are cropped as they arrive, so memory follows the segment's voxels rather
    than the number of frames times the frame size.
    """

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int, int, npt.NDArray[np.bool_]]] = []
        self.used = 0
        self.skipped = 0
        self.resampled = 0

    def add(self, k: int, j0: int, i0: int, block: npt.NDArray[np.bool_]) -> None:
        rows = np.flatnonzero(block.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(block.any(axis=0))
        a, b, c, d = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        self.blocks.append((k, j0 + a, i0 + c, block[a:b, c:d].copy()))

    def to_box(self, grid_shape: tuple[int, int, int]) -> BoxMask:
        if not self.blocks:
            return BoxMask.empty(grid_shape)
        k0 = min(b[0] for b in self.blocks)
        k1 = max(b[0] for b in self.blocks) + 1
        j0 = min(b[1] for b in self.blocks)
        j1 = max(b[1] + b[3].shape[0] for b in self.blocks)
        i0 = min(b[2] for b in self.blocks)
        i1 = max(b[2] + b[3].shape[1] for b in self.blocks)
        data = np.zeros((k1 - k0, j1 - j0, i1 - i0), dtype=bool)
        for k, j, i, block in self.blocks:
            h, w = block.shape
            data[k - k0, j - j0 : j - j0 + h, i - i0 : i - i0 + w] |= block
        return BoxMask(data, (k0, j0, i0), grid_shape)


def _place_segments(
    path: Path, header: SegHeader, series: DicomSeries, threshold: float
) -> list[MaskRegion]:
    scan = ScanSlices.from_series(series)
    thickness = seg_slice_spacing(header.frames)
    placements = [
        place_frame(f, header.rows, header.columns, scan, thickness) for f in header.frames
    ]
    pieces = {s.number: _SegmentPieces() for s in header.segments}
    frames_by_index = {f.index: f for f in header.frames}
    for index, pixels in _decoded_frames(path, header):
        placement, geom = placements[index]
        for number, mask in _segment_masks(header, frames_by_index[index], pixels, threshold):
            acc = pieces[number]
            if placement.kind == "slice" and placement.k is not None:
                acc.add(placement.k, 0, 0, mask)
                acc.used += 1
                continue
            placed = resample_frame(mask, geom, scan) if geom is not None else []
            if not placed:
                acc.skipped += 1
                continue
            for k, j0, i0, block in placed:
                acc.add(k, j0, i0, block)
            acc.used += 1
            acc.resampled += 1
    grid_shape = series.grid.array_shape
    return [
        MaskRegion(
            number=s.number,
            name=s.label,
            mask=pieces[s.number].to_box(grid_shape),
            color_rgb=s.color_rgb,
            frames_used=pieces[s.number].used,
            frames_skipped=pieces[s.number].skipped,
            frames_resampled=pieces[s.number].resampled,
        )
        for s in header.segments
        if not (header.segmentation_type == "LABELMAP" and s.number == 0)
    ]


def _check_pixel_data_length(ds: Dataset, header: SegHeader, path: Path) -> None:
    """Refuse uncompressed pixel data shorter than its frames need.

    pydicom's frame iterator reads past the end of a truncated value without complaint,
    so this is checked here; compressed data is checked by its decoder.
    """
    tag = describe_tag("PixelData")
    if "PixelData" not in ds:
        raise AnnotationError(
            f"{path}: {tag} is missing; the file is incomplete, export the segmentation again"
        )
    if ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian).is_encapsulated:
        return
    bits = int(ds.get("BitsAllocated", 1) or 1) * int(ds.get("SamplesPerPixel", 1) or 1)
    need = -(-header.rows * header.columns * len(header.frames) * bits // 8)
    elem = ds.get_item("PixelData", keep_deferred=True)
    have = getattr(elem, "length", None)
    if have is None:
        have = len(elem.value or b"")
    if have < need:
        raise AnnotationError(
            f"{path}: {tag} holds {have} bytes but {len(header.frames)} frames of "
            f"{header.rows} x {header.columns} pixels at {bits} bit(s) need {need}; the file "
            "is truncated, export the segmentation again"
        )


def _decoded_frames(path: Path, header: SegHeader) -> Iterator[tuple[int, npt.NDArray[np.generic]]]:
    """``(frame index, rows x columns array)`` one frame at a time, read from the file."""
    expected = (header.rows, header.columns)
    index = -1
    try:
        frames = _frame_source(path)
        for index, frame in enumerate(frames):
            if frame.shape != expected:
                raise AnnotationError(
                    f"{path}: frame {index + 1} decodes to shape {frame.shape}, not Rows x "
                    f"Columns {expected}; the file is damaged, export the segmentation again"
                )
            yield index, frame
    except AnnotationError:
        raise
    except Exception as e:
        raise AnnotationError(
            f"{path}: cannot decode {describe_tag('PixelData')} (frame {index + 2}): "
            f"{type(e).__name__}: {e}; the file is damaged or uses an unsupported compression"
        ) from e
    if index + 1 != len(header.frames):
        raise AnnotationError(
            f"{path}: {describe_tag('PixelData')} holds {index + 1} frames but NumberOfFrames "
            f"says {len(header.frames)}; the file is damaged, export the segmentation again"
        )


def _frame_source(path: Path) -> Iterator[npt.NDArray[np.generic]]:
    """pydicom's frames, or ours for 1-bit RLE (what OHIF writes for a BINARY SEG)."""
    if is_rle_bit_packed(open_dataset(path, stop_before_pixels=True)):
        return iter_rle_bit_frames(open_dataset(path, stop_before_pixels=False))
    return iter_pixels(path)


def _segment_masks(
    header: SegHeader, frame: SegFrame, pixels: npt.NDArray[np.generic], threshold: float
) -> Iterator[tuple[int, npt.NDArray[np.bool_]]]:
    """``(segment number, boolean frame)`` for every segment with a voxel in this frame."""
    if header.segmentation_type == "LABELMAP":
        yield from _labelmap_masks(header, pixels)
        return
    assert frame.segment_number is not None
    if header.segmentation_type == "FRACTIONAL":
        assert header.max_fractional_value is not None
        cut = fractional_cutoff(header.max_fractional_value, threshold)
        mask = np.asarray(pixels) >= cut
    else:
        mask = np.asarray(pixels) != 0
    if mask.any():
        yield frame.segment_number, mask


def _labelmap_masks(
    header: SegHeader, pixels: npt.NDArray[np.generic]
) -> Iterator[tuple[int, npt.NDArray[np.bool_]]]:
    """One mask per segment number present; 0 and PixelPaddingValue are no segment."""
    values = np.asarray(pixels)
    present = np.unique(values)
    known = {s.number for s in header.segments}
    for value in present.tolist():
        if value == 0 or value == header.pixel_padding_value or value not in known:
            continue
        yield int(value), values == value


def fractional_cutoff(max_value: int, threshold: float) -> int:
    """Smallest stored value ``v`` with ``v / max_value >= threshold``.

    Comparing integers against this avoids converting every pixel to float and settles
    rounding once (127/255 < 0.5 <= 128/255).
    """
    v = int(np.ceil(threshold * max_value))
    while v > 0 and (v - 1) / max_value >= threshold:
        v -= 1
    while v / max_value < threshold:
        v += 1
    return v
