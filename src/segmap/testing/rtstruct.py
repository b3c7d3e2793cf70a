"""Writing a synthetic RT Structure Set: named, coloured ROIs of contours on a written series."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from segmap.imaging.sop_classes import RTSTRUCT_SOP_CLASS
from segmap.testing.ct import CT_IMAGE_STORAGE, WrittenSeries
from segmap.testing.dicomfields import ds_number, make_uid, set_patient_study

RT_STRUCTURE_SET_STORAGE = RTSTRUCT_SOP_CLASS
DETACHED_STUDY_MANAGEMENT = UID("1.2.840.10008.3.1.2.3.1")


@dataclass(frozen=True, eq=False)
class SyntheticContour:
    """One closed planar contour.

    Attributes:
        points_lps: ``(N, 3)`` vertices in LPS mm, exactly as written to the file.
        slice_index: index ``k`` of the series slice the contour lies on, or None for a
            contour deliberately placed off every slice.
        referenced_sop_instance_uid: overrides the image reference the writer derives
            from ``slice_index`` (e.g. to reference an instance missing from the series).
        geometric_type: DICOM ContourGeometricType.
    """

    points_lps: npt.NDArray[np.float64]
    slice_index: int | None
    referenced_sop_instance_uid: str | None = None
    geometric_type: str = "CLOSED_PLANAR"


@dataclass(frozen=True, eq=False)
class SyntheticROI:
    """A named ROI: its colour, its contours and the CT number the phantom gives it."""

    name: str
    color_rgb: tuple[int, int, int]
    contours: tuple[SyntheticContour, ...]
    hu: float = 40.0


def write_rtstruct(
    path: str | Path,
    series: WrittenSeries,
    rois: Sequence[SyntheticROI],
    *,
    label: str = "segmap synthetic",
    seed: int = 0,
    frame_of_reference_uid: str | None = None,
    roi_numbers: Sequence[int] | None = None,
) -> str:
    """Write ``rois`` as an RT Structure Set referencing ``series``; returns its SOP UID.

    The file carries the references planning systems and OHIF write: a Referenced Frame
    of Reference Sequence holding the study, the series and every slice as contour
    images; a Structure Set ROI Sequence (number, name, frame of reference, algorithm);
    an ROI Contour Sequence (display colour; per contour its image reference, geometric
    type, point count and data); and RT ROI Observations. ``frame_of_reference_uid``
    overrides the series' one (to make a mismatching file). ROI numbers default to 1..n.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    identity = series.identity
    for_uid = frame_of_reference_uid or series.frame_of_reference_uid
    sop_uid = make_uid(seed, "rtstruct", series.series_instance_uid, label)
    numbers = list(roi_numbers) if roi_numbers is not None else list(range(1, len(rois) + 1))
    if len(numbers) != len(rois):
        raise ValueError("roi_numbers must give one number per ROI")

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = sop_uid
    set_patient_study(ds, identity)
    now = _dt.datetime(2024, 1, 2, 12, 0, 0)
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "segmap synthetic"
    ds.SeriesInstanceUID = make_uid(seed, "rtseries", sop_uid)
    ds.SeriesNumber = 99
    ds.SeriesDescription = label
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label
    ds.StructureSetDate = ds.InstanceCreationDate
    ds.StructureSetTime = ds.InstanceCreationTime

    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_for(series, for_uid)])
    ds.StructureSetROISequence = DicomSequence(
        [_structure_set_roi(n, roi.name, for_uid) for n, roi in zip(numbers, rois, strict=True)]
    )
    ds.ROIContourSequence = DicomSequence(
        [_roi_contour(n, roi, series) for n, roi in zip(numbers, rois, strict=True)]
    )
    ds.RTROIObservationsSequence = DicomSequence(
        [_observation(i + 1, n) for i, n in enumerate(numbers)]
    )
    ds.save_as(path, enforce_file_format=True)
    return sop_uid


def _referenced_for(series: WrittenSeries, for_uid: str) -> Dataset:
    images = []
    for uid in series.sop_instance_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        item.ReferencedSOPInstanceUID = uid
        images.append(item)
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = series.series_instance_uid
    ref_series.ContourImageSequence = DicomSequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
    study.ReferencedSOPInstanceUID = series.identity.study_instance_uid
    study.RTReferencedSeriesSequence = DicomSequence([ref_series])
    ref = Dataset()
    ref.FrameOfReferenceUID = for_uid
    ref.RTReferencedStudySequence = DicomSequence([study])
    return ref


def _structure_set_roi(number: int, name: str, for_uid: str) -> Dataset:
    item = Dataset()
    item.ROINumber = number
    item.ReferencedFrameOfReferenceUID = for_uid
    item.ROIName = name
    item.ROIGenerationAlgorithm = "MANUAL"
    return item


def _roi_contour(number: int, roi: SyntheticROI, series: WrittenSeries) -> Dataset:
    item = Dataset()
    item.ROIDisplayColor = list(roi.color_rgb)
    item.ReferencedROINumber = number
    contours = []
    for n, c in enumerate(roi.contours, start=1):
        cd = Dataset()
        ref_uid = c.referenced_sop_instance_uid
        if ref_uid is None and c.slice_index is not None:
            ref_uid = series.sop_instance_uids[c.slice_index]
        if ref_uid is not None:
            img = Dataset()
            img.ReferencedSOPClassUID = CT_IMAGE_STORAGE
            img.ReferencedSOPInstanceUID = ref_uid
            cd.ContourImageSequence = DicomSequence([img])
        cd.ContourGeometricType = c.geometric_type
        pts = np.asarray(c.points_lps, dtype=float).reshape(-1, 3)
        cd.NumberOfContourPoints = len(pts)
        cd.ContourNumber = n
        cd.ContourData = [ds_number(x) for x in pts.ravel()]
        contours.append(cd)
    if contours:
        item.ContourSequence = DicomSequence(contours)
    return item


def _observation(obs_number: int, roi_number: int) -> Dataset:
    item = Dataset()
    item.ObservationNumber = obs_number
    item.ReferencedROINumber = roi_number
    item.RTROIInterpretedType = "ORGAN"
    item.ROIInterpreter = ""
    return item
