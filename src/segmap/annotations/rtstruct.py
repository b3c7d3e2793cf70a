"""RTSTRUCT reading: ROIs with their numbers, names, colours and planar contours.

Contours stay in patient LPS mm; placing them on slices and filling them is the
rasteriser's job (:mod:`segmap.masks`). The RTSTRUCT's frame of reference is checked
against the image series with :func:`check_frame_of_reference`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from segmap.annotations._dicom import (
    describe_tag,
    items,
    open_dataset,
    optional_uid,
    reading,
    required,
    text,
)
from segmap.annotations.info import annotation_info_from_dataset, check_frame_of_reference
from segmap.annotations.types import AnnotationInfo, ContourRegion, PlanarContour
from segmap.errors import AnnotationError
from segmap.imaging.series import DicomSeries

__all__ = ["check_frame_of_reference", "contours_on_missing_slices", "read_rtstruct"]

_CONTOUR_DATA = Tag("ContourData")


def read_rtstruct(path: Path) -> tuple[AnnotationInfo, list[ContourRegion]]:
    """Read an RTSTRUCT's ROIs in StructureSetROISequence order.

    Each :class:`ContourRegion` has the ROINumber, ROIName, ROIDisplayColor (if any), its
    frame of reference and its contours (vertices ``(N, 3)`` float64 in LPS mm). ROIs
    without contours are returned with an empty tuple so reports can list them. Raises
    :class:`AnnotationError` naming the file and the attribute when the file is damaged.
    """
    path = Path(path)
    ds = open_dataset(path, stop_before_pixels=True)
    info = annotation_info_from_dataset(ds, path)
    if info.modality != "RTSTRUCT":
        raise AnnotationError(
            f"{path}: this is a {info.modality}, not an RTSTRUCT; read it as a SEG"
        )
    names = _roi_names(ds, path)
    contour_sets = _roi_contour_sets(ds, path)
    numbers = list(names) + [n for n in contour_sets if n not in names]
    regions = []
    for number in numbers:
        name, frame_uid = names.get(number, ("", None))
        contours, color = contour_sets.get(number, ((), None))
        regions.append(ContourRegion(number, name, contours, color, frame_uid))
    return info, regions


def contours_on_missing_slices(regions: list[ContourRegion], series: DicomSeries) -> dict[int, int]:
    """Per ROI number, how many contours name an image that is not in ``series``.

    Only contours that carry a ReferencedSOPInstanceUID are judged; ROIs with none missing
    are left out. Such contours usually lie off every slice plane and are skipped by the
    rasteriser; this tells the report why.
    """
    known = set(series.sop_instance_uids)
    missing: dict[int, int] = {}
    for region in regions:
        n = sum(
            1
            for c in region.contours
            if c.referenced_sop_instance_uid is not None
            and c.referenced_sop_instance_uid not in known
        )
        if n:
            missing[region.number] = n
    return missing


def _roi_names(ds: Dataset, path: Path) -> dict[int, tuple[str, str | None]]:
    """ROINumber -> (ROIName, ReferencedFrameOfReferenceUID) from StructureSetROISequence."""
    if "StructureSetROISequence" not in ds:
        raise AnnotationError(
            f"{path}: {describe_tag('StructureSetROISequence')} is missing, so the ROIs have no "
            "names; the file is incomplete, export the ROI collection again"
        )
    names: dict[int, tuple[str, str | None]] = {}
    for pos, roi in enumerate(items(ds, "StructureSetROISequence"), start=1):
        where = f"item {pos} of StructureSetROISequence"
        with reading(path, f"{describe_tag('ROINumber')} in {where}"):
            number = int(required(roi, "ROINumber", path, where))
        if number in names:
            raise AnnotationError(
                f"{path}: ROINumber {number} appears twice in StructureSetROISequence; "
                "the file is damaged, export the ROI collection again"
            )
        with reading(path, f"{describe_tag('ROIName')} of ROI {number}"):
            frame_uid = optional_uid(roi, "ReferencedFrameOfReferenceUID")
            names[number] = (text(roi, "ROIName"), frame_uid)
    return names


def _roi_contour_sets(
    ds: Dataset, path: Path
) -> dict[int, tuple[tuple[PlanarContour, ...], tuple[int, int, int] | None]]:
    """ReferencedROINumber -> (contours, display colour) from ROIContourSequence."""
    sets: dict[int, tuple[tuple[PlanarContour, ...], tuple[int, int, int] | None]] = {}
    for pos, roi_contour in enumerate(items(ds, "ROIContourSequence"), start=1):
        where = f"item {pos} of ROIContourSequence"
        with reading(path, f"{describe_tag('ReferencedROINumber')} in {where}"):
            number = int(required(roi_contour, "ReferencedROINumber", path, where))
        contours = tuple(
            _contour(c, path, number, idx)
            for idx, c in enumerate(items(roi_contour, "ContourSequence"), start=1)
        )
        if number in sets:
            # Two ROIContourSequence items for one ROI: keep every contour.
            contours = sets[number][0] + contours
        sets[number] = (contours, _display_color(roi_contour))
    return sets


def _display_color(roi_contour: Dataset) -> tuple[int, int, int] | None:
    """ROIDisplayColor as (r, g, b) 0-255, or None when absent or malformed (it is optional)."""
    try:
        value = roi_contour.get("ROIDisplayColor")
        if value is None or len(value) != 3:
            return None
        r, g, b = (min(255, max(0, int(v))) for v in value)
    except (TypeError, ValueError):
        return None
    return (r, g, b)


def _contour(contour: Dataset, path: Path, roi: int, idx: int) -> PlanarContour:
    where = f"ROI {roi}, contour {idx}"
    with reading(path, f"{describe_tag('ContourGeometricType')} of {where}"):
        geometric_type = (
            text(contour, "ContourGeometricType").upper()
            or str(required(contour, "ContourGeometricType", path, where)).strip().upper()
        )
    points = _contour_points(contour, path, where)
    with reading(path, f"{describe_tag('ContourImageSequence')} of {where}"):
        refs = [
            text(img, "ReferencedSOPInstanceUID") for img in items(contour, "ContourImageSequence")
        ]
    ref = next((r for r in refs if r), None)
    return PlanarContour(points, geometric_type, ref)


def _contour_points(contour: Dataset, path: Path, where: str) -> npt.NDArray[np.float64]:
    """ContourData as ``(N, 3)`` float64 LPS mm.

    The raw decimal strings are parsed by NumPy in one go: pydicom's per-value DS objects
    cost about a microsecond each, which adds up to seconds on a large RTSTRUCT.
    """
    tag_name = describe_tag("ContourData")
    elem = contour.get_item(_CONTOUR_DATA) if _CONTOUR_DATA in contour else None
    if elem is None:
        raise AnnotationError(
            f"{path}: {tag_name} is missing in {where}; the file is incomplete, "
            "export the ROI collection again"
        )
    try:
        raw = elem.value
        if isinstance(raw, bytes | bytearray):
            parts = bytes(raw).strip(b" \x00").split(b"\\")
            values = np.array(parts, dtype=np.float64) if parts != [b""] else np.empty(0)
        else:
            values = np.asarray(contour.ContourData, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise AnnotationError(
            f"{path}: {tag_name} of {where} holds a value that is not a number ({e}); "
            "the file is damaged, export the ROI collection again"
        ) from e
    if values.size == 0 or values.size % 3:
        raise AnnotationError(
            f"{path}: {tag_name} of {where} holds {values.size} numbers, not a positive "
            "multiple of 3 (x, y, z per point); the file is damaged, export the ROI collection "
            "again"
        )
    if not np.all(np.isfinite(values)):
        raise AnnotationError(
            f"{path}: {tag_name} of {where} holds a non-finite coordinate; the file is damaged, "
            "export the ROI collection again"
        )
    return values.reshape(-1, 3)
