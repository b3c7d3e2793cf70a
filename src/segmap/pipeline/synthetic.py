"""Synthetic DICOM data whose true masks are known: CT series, RTSTRUCTs and phantoms.

Tests, benchmarks and the demo need DICOM inputs with an exactly known answer. This
module writes them with pydicom:

* :func:`write_ct_series` writes any :class:`~segmap.imaging.grid.VoxelGrid` (axial or
  oblique, square or non-square pixels, HFS or FFS) and a Hounsfield volume as a CT
  series, optionally with shuffled file names and instance numbers.
* :func:`write_rtstruct` writes named, coloured ROIs of CLOSED_PLANAR contours that refer
  to the series the way planning systems do (referenced frame of reference, study,
  series and contour images).
* :func:`phantom_rois` builds an abdomen-like phantom of seven regions (a body that
  overhangs the image, organs, two disjoint kidneys in one ROI, a vessel wall with a
  lumen hole, a concave vertebra, a lesion inside the liver) as polygons on slice planes.
  :func:`render_phantom_ct` paints a matching CT so previews look like a scan.

The truth of an ROI is its polygons: a voxel is inside when its centre is inside an odd
number of the ROI's contours on its slice. Every contour returned here holds exactly the
coordinates written to the file, so a test can recompute the truth with its own
point-in-polygon test without reading segmap's code.

Coordinates: patient LPS in mm. In-plane phantom coordinates ``(u, v, w)`` are mm along
the grid's ``i`` (row direction), ``j`` (column direction) and ``k`` (slice normal)
axes, measured from the centre of the grid.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from segmap.imaging.grid import VoxelGrid

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
RT_STRUCTURE_SET_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.3")
DETACHED_STUDY_MANAGEMENT = UID("1.2.840.10008.3.1.2.3.1")

HU_INTERCEPT = -1024.0
"""RescaleIntercept written to every synthetic CT slice (stored value = HU + 1024)."""

_COORD_DECIMALS = 6  # mm; keeps every DS value within its 16 characters
_COSINE_DECIMALS = 10


# --- identities ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyIdentity:
    """Patient and study identity shared by a series and the annotations on it."""

    patient_id: str
    patient_name: str
    study_instance_uid: str
    study_date: str = "20240102"
    study_time: str = "101500"
    study_id: str = "1"
    accession_number: str = ""

    @classmethod
    def generate(cls, seed: int | str = 0, patient_id: str = "SYNTH001") -> StudyIdentity:
        """A deterministic identity derived from ``seed``."""
        return cls(
            patient_id=patient_id,
            patient_name=f"Synthetic^{patient_id}",
            study_instance_uid=_uid(seed, "study", patient_id),
        )


@dataclass(frozen=True, eq=False)
class WrittenSeries:
    """A CT series on disk.

    Attributes:
        folder: where the files are.
        grid: the geometry the series was written from (``k`` = slice order of ``files``).
        files: file of slice ``k``.
        sop_instance_uids: SOPInstanceUID of slice ``k``.
        positions_lps: ImagePositionPatient of slice ``k`` as written (LPS mm).
        identity: patient and study.
        series_instance_uid, frame_of_reference_uid: as written.
        patient_position: the PatientPosition tag written (``HFS``, ``FFS``, ...).
    """

    folder: Path
    grid: VoxelGrid
    files: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    positions_lps: tuple[tuple[float, float, float], ...]
    identity: StudyIdentity
    series_instance_uid: str
    frame_of_reference_uid: str
    patient_position: str


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


@dataclass(frozen=True, eq=False)
class SyntheticCase:
    """Everything one conversion needs: series, RTSTRUCT, region map, and the truth."""

    series: WrittenSeries
    rtstruct_path: Path
    region_map_path: Path
    rois: tuple[SyntheticROI, ...]
    region_values: dict[str, int] = field(default_factory=dict)


# --- grids -----------------------------------------------------------------------------


def axial_grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    patient_position: str = "HFS",
    origin_lps: tuple[float, float, float] | None = None,
) -> VoxelGrid:
    """An axial grid as scanners write it, centred on the isocentre unless ``origin_lps``.

    ``HFS``: rows run to the patient's left (+x), columns posterior (+y), slices head-wards
    (+z). ``FFS``: rows run to the patient's right (-x), slices foot-wards (-z), as some
    scanners write feet-first scans. ``size`` is ``(ni, nj, nk)``, ``spacing`` ``(di, dj,
    dk)`` in mm.
    """
    if patient_position.upper() == "FFS":
        direction = np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]]).T
    else:
        direction = np.eye(3)
    return _centred_grid(size, spacing, direction, origin_lps)


def oblique_grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    angles_deg: tuple[float, float, float] = (17.0, -11.0, 23.0),
    origin_lps: tuple[float, float, float] | None = None,
) -> VoxelGrid:
    """A grid rotated about x, y and z by ``angles_deg`` (degrees), centred unless given."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return _centred_grid(size, spacing, rz @ ry @ rx, origin_lps)


def _centred_grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    direction: npt.NDArray[np.float64],
    origin_lps: tuple[float, float, float] | None,
) -> VoxelGrid:
    d = np.round(np.asarray(direction, dtype=float), _COSINE_DECIMALS)
    if origin_lps is None:
        half = (np.asarray(size, dtype=float) - 1) / 2 * np.asarray(spacing, dtype=float)
        origin = -(d @ half)
    else:
        origin = np.asarray(origin_lps, dtype=float)
    return VoxelGrid.from_arrays(size, spacing, np.round(origin, _COORD_DECIMALS), d)


# --- writing a CT series -----------------------------------------------------------------


def write_ct_series(
    folder: str | Path,
    grid: VoxelGrid,
    volume_hu_kji: npt.ArrayLike,
    *,
    identity: StudyIdentity | None = None,
    patient_position: str = "HFS",
    shuffle: bool = True,
    seed: int = 0,
    series_description: str = "Synthetic CT",
    series_number: int = 2,
    frame_of_reference_uid: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    file_prefix: str = "",
) -> WrittenSeries:
    """Write ``volume_hu_kji`` (Hounsfield units, shape ``grid.array_shape``) as CT files.

    Stored pixels are unsigned 16-bit ``HU + 1024`` (clipped to 0..65535) with
    RescaleIntercept -1024 and slope 1. Geometry comes from ``grid``:
    ImageOrientationPatient from its ``i`` and ``j`` directions, ImagePositionPatient of
    slice ``k`` = origin + ``k`` x slice spacing x ``k`` direction, PixelSpacing = ``[dj,
    di]``. With ``shuffle`` the file names and InstanceNumbers are a random permutation
    of the slice order, so nothing but the geometry says where a slice belongs.
    ``transfer_syntax`` other than explicit VR little endian compresses each slice with
    pydicom's encoders (e.g. RLE Lossless, JPEG 2000 Lossless).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    volume = np.asarray(volume_hu_kji)
    if volume.shape != grid.array_shape:
        raise ValueError(f"volume shape {volume.shape} != grid array shape {grid.array_shape}")
    identity = identity or StudyIdentity.generate(seed)
    series_uid = _uid(seed, "series", identity.study_instance_uid, series_number)
    for_uid = frame_of_reference_uid or _uid(seed, "for", identity.study_instance_uid)
    nk = grid.size[2]
    rng = np.random.default_rng(seed)
    order = rng.permutation(nk) if shuffle else np.arange(nk)
    sop_uids = tuple(_uid(seed, "sop", series_uid, k) for k in range(nk))
    positions = tuple(_slice_position(grid, k) for k in range(nk))
    template = _ct_template(grid, identity, series_uid, for_uid, patient_position,
                            series_description, series_number)
    files: list[Path] = []
    for k in range(nk):
        ds = _ct_slice(template, grid, volume[k], sop_uids[k], positions[k], int(order[k]) + 1)
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax)
        name = f"{file_prefix}{_file_token(int(order[k]))}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return WrittenSeries(
        folder=folder,
        grid=grid,
        files=tuple(files),
        sop_instance_uids=sop_uids,
        positions_lps=positions,
        identity=identity,
        series_instance_uid=series_uid,
        frame_of_reference_uid=for_uid,
        patient_position=patient_position,
    )


def _slice_position(grid: VoxelGrid, k: int) -> tuple[float, float, float]:
    p = np.asarray(grid.origin_lps) + k * grid.spacing[2] * grid.direction_matrix[:, 2]
    r = np.round(p, _COORD_DECIMALS)
    return (float(r[0]), float(r[1]), float(r[2]))


def _file_token(n: int) -> str:
    return f"IM{n:05d}"


def _ct_template(
    grid: VoxelGrid,
    identity: StudyIdentity,
    series_uid: str,
    for_uid: str,
    patient_position: str,
    series_description: str,
    series_number: int,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    _set_patient_study(ds, identity)
    ds.SeriesDate = identity.study_date
    ds.SeriesTime = identity.study_time
    ds.Modality = "CT"
    ds.Manufacturer = "segmap synthetic"
    ds.SeriesDescription = series_description
    ds.PatientPosition = patient_position
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    d = grid.direction_matrix
    ds.ImageOrientationPatient = [_ds_number(x, _COSINE_DECIMALS) for x in
                                  (*d[:, 0], *d[:, 1])]
    ds.PixelSpacing = [_ds_number(grid.spacing[1]), _ds_number(grid.spacing[0])]
    ds.SliceThickness = _ds_number(grid.spacing[2])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = grid.size[1]
    ds.Columns = grid.size[0]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _ds_number(HU_INTERCEPT)
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    return ds


def _ct_slice(
    template: Dataset,
    grid: VoxelGrid,
    plane_hu: npt.NDArray[np.generic],
    sop_uid: str,
    position: tuple[float, float, float],
    instance_number: int,
) -> Dataset:
    ds = Dataset()
    ds.update(template)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [_ds_number(x) for x in position]
    ds.SliceLocation = _ds_number(float(np.dot(position, grid.slice_normal_lps)))
    stored = np.clip(np.rint(np.asarray(plane_hu, dtype=float) - HU_INTERCEPT), 0, 65535)
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


# --- writing an RTSTRUCT -------------------------------------------------------------------


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
    sop_uid = _uid(seed, "rtstruct", series.series_instance_uid, label)
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
    _set_patient_study(ds, identity)
    now = _dt.datetime(2024, 1, 2, 12, 0, 0)
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "segmap synthetic"
    ds.SeriesInstanceUID = _uid(seed, "rtseries", sop_uid)
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
        cd.ContourData = [_ds_number(x) for x in pts.ravel()]
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


def _set_patient_study(ds: Dataset, identity: StudyIdentity) -> None:
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.StudyDate = identity.study_date
    ds.StudyTime = identity.study_time
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = ""


# --- the phantom -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Ellipse:
    """A cross-section family: an ellipse in the (u, v) plane whose size depends on w.

    ``kind`` is ``ellipsoid`` (semi-axes shrink as sqrt(1 - ((w - cw) / aw)^2)),
    ``cylinder`` (constant between ``cw - aw`` and ``cw + aw``) or ``flower`` (a concave
    outline ``r(t) = a (1 + amp cos(lobes (t - phase - twist w)))`` on a cylinder).
    """

    kind: str
    cu: float
    cv: float
    cw: float
    au: float
    av: float
    aw: float
    amp: float = 0.0
    lobes: int = 0
    twist: float = 0.0  # radians per mm of w

    def scale_at(self, w: float) -> float:
        t = (w - self.cw) / self.aw
        if abs(t) > 1.0:
            return 0.0
        if self.kind == "ellipsoid":
            return float(np.sqrt(1.0 - t * t))
        return 1.0

    def loop(self, w: float, n: int) -> npt.NDArray[np.float64] | None:
        """``(n, 2)`` polygon (u, v) in mm at ``w``, or None where the shape is absent."""
        s = self.scale_at(w)
        if s < 0.08:  # skip slivers a few vertices wide: they say nothing a test needs
            return None
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        r = np.ones_like(t)
        if self.kind == "flower":
            r = 1.0 + self.amp * np.cos(self.lobes * (t - self.twist * w))
        return np.stack([self.cu + s * self.au * r * np.cos(t),
                         self.cv + s * self.av * r * np.sin(t)], axis=1)

    def inside(self, u: npt.NDArray[np.float64], v: npt.NDArray[np.float64],
               w: float) -> npt.NDArray[np.bool_]:
        """Analytic inside test at in-plane points (used only to paint the CT image)."""
        s = self.scale_at(w)
        if s < 0.08:
            return np.zeros(np.broadcast(u, v).shape, dtype=bool)
        du = (u - self.cu) / (s * self.au)
        dv = (v - self.cv) / (s * self.av)
        rr = np.hypot(du, dv)
        if self.kind == "flower":
            t = np.arctan2(dv, du)
            return rr < 1.0 + self.amp * np.cos(self.lobes * (t - self.twist * w))
        return rr < 1.0


@dataclass(frozen=True)
class _PhantomRegion:
    name: str
    color: tuple[int, int, int]
    hu: float
    outer: tuple[_Ellipse, ...]  # disjoint components
    holes: tuple[_Ellipse, ...] = ()  # inner contours (holes) of the components
    hole_hu: float | None = None


PHANTOM_REGION_VALUES: dict[str, int] = {
    "Body": 1,
    "Liver": 10,
    "Spleen": 20,
    "Kidneys": 30,
    "Aorta": 40,
    "Vertebra": 50,
    "Lesion": 60,
}
"""A region map for the phantom, in painting order (organs after the body, lesion last)."""


def _phantom_regions(grid: VoxelGrid, body_overhang: float) -> list[_PhantomRegion]:
    hu_, hv_, hw_ = (grid.size[n] * grid.spacing[n] / 2 for n in range(3))
    r0 = min(hu_, hv_)
    e = _Ellipse
    return [
        _PhantomRegion("Body", (0, 160, 0), 0.0,
                       (e("cylinder", 0, 0.05 * hv_, 0, body_overhang * hu_, 0.78 * hv_,
                          1.5 * hw_),)),
        _PhantomRegion("Liver", (170, 80, 50), 60.0,
                       (e("ellipsoid", -0.38 * hu_, -0.1 * hv_, 0.15 * hw_, 0.33 * hu_,
                          0.3 * hv_, 0.35 * hw_),)),
        _PhantomRegion("Spleen", (150, 50, 200), 50.0,
                       (e("ellipsoid", 0.52 * hu_, 0.05 * hv_, 0.2 * hw_, 0.15 * hu_,
                          0.15 * hv_, 0.2 * hw_),)),
        _PhantomRegion("Kidneys", (230, 200, 0), 30.0,
                       (e("ellipsoid", -0.32 * hu_, 0.38 * hv_, -0.25 * hw_, 0.1 * hu_,
                          0.15 * hv_, 0.22 * hw_),
                        e("ellipsoid", 0.32 * hu_, 0.38 * hv_, -0.25 * hw_, 0.1 * hu_,
                          0.15 * hv_, 0.22 * hw_))),
        _PhantomRegion("Aorta", (220, 30, 30), 40.0,
                       (e("cylinder", 0.06 * hu_, 0.3 * hv_, 0, 0.1 * r0, 0.1 * r0,
                          0.4 * hw_),),
                       holes=(e("cylinder", 0.06 * hu_, 0.3 * hv_, 0, 0.06 * r0, 0.06 * r0,
                                0.4 * hw_),),
                       hole_hu=200.0),
        _PhantomRegion("Vertebra", (240, 240, 240), 700.0,
                       (e("flower", 0.0, 0.6 * hv_, 0, 0.12 * r0, 0.12 * r0, 0.5 * hw_,
                          amp=0.35, lobes=5, twist=0.02),)),
        _PhantomRegion("Lesion", (0, 120, 255), 90.0,
                       (e("ellipsoid", -0.42 * hu_, -0.12 * hv_, 0.2 * hw_, 0.08 * r0,
                          0.08 * r0, 0.12 * hw_),)),
    ]


def phantom_rois(
    grid: VoxelGrid,
    *,
    vertices: int = 96,
    body_overhang: float = 1.06,
    decimals: int = _COORD_DECIMALS,
) -> tuple[SyntheticROI, ...]:
    """The seven phantom ROIs as contours on the slice planes of ``grid``.

    Shapes scale with the grid's extent, so any size, spacing and orientation works. The
    body is ``body_overhang`` times wider than the image (its contours leave the image
    left and right); the kidneys are two disjoint contours per slice; the aorta is an
    outer and an inner contour (a hole); the vertebra is concave; the lesion lies inside
    the liver. Vertices are rounded to ``decimals`` mm, as written to the file.
    """
    d = grid.direction_matrix
    centre = np.asarray(grid.origin_lps) + d @ ((np.asarray(grid.size) - 1) / 2
                                                * np.asarray(grid.spacing))
    nk = grid.size[2]
    rois = []
    for region in _phantom_regions(grid, body_overhang):
        contours: list[SyntheticContour] = []
        for k in range(nk):
            w = (k - (nk - 1) / 2) * grid.spacing[2]
            plane_centre = centre + w * d[:, 2]
            for shape in (*region.outer, *region.holes):
                loop = shape.loop(w, vertices)
                if loop is None:
                    continue
                pts = plane_centre + loop[:, :1] * d[:, 0] + loop[:, 1:] * d[:, 1]
                contours.append(SyntheticContour(np.round(pts, decimals), k))
        rois.append(SyntheticROI(region.name, region.color, tuple(contours), region.hu))
    return tuple(rois)


def render_phantom_ct(
    grid: VoxelGrid,
    *,
    body_overhang: float = 1.06,
    noise_hu: float = 8.0,
    seed: int = 0,
) -> npt.NDArray[np.int16]:
    """A CT volume ``[k, j, i]`` in HU that looks like the phantom (air -1000 outside).

    The image uses the analytic shapes, not the polygons; it is for viewing and timing,
    not a truth. ``noise_hu`` adds Gaussian noise of that standard deviation.
    """
    ni, nj, nk = grid.size
    u = (np.arange(ni) - (ni - 1) / 2) * grid.spacing[0]
    v = (np.arange(nj) - (nj - 1) / 2) * grid.spacing[1]
    uu, vv = np.meshgrid(u, v)  # [j, i]
    rng = np.random.default_rng(seed)
    out = np.empty(grid.array_shape, dtype=np.int16)
    regions = _phantom_regions(grid, body_overhang)
    for k in range(nk):
        w = (k - (nk - 1) / 2) * grid.spacing[2]
        plane = np.full((nj, ni), -1000.0)
        for region in regions:
            for shape in region.outer:
                plane[shape.inside(uu, vv, w)] = region.hu
            for hole in region.holes:
                plane[hole.inside(uu, vv, w)] = region.hole_hu if region.hole_hu is not None \
                    else -1000.0
        if noise_hu > 0:
            plane += rng.normal(0.0, noise_hu, plane.shape).astype(np.float32)
        out[k] = np.clip(np.rint(plane), -1024, 3071).astype(np.int16)
    return out


def write_region_map(path: str | Path, values: dict[str, int]) -> Path:
    """Write a ``region2MaskValueMap.txt`` (``Label=Value`` per line, in dict order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()),
                    encoding="utf-8")
    return path


def make_case(
    root: str | Path,
    grid: VoxelGrid,
    *,
    patient_position: str = "HFS",
    shuffle: bool = True,
    seed: int = 0,
    vertices: int = 96,
    body_overhang: float = 1.06,
    identity: StudyIdentity | None = None,
    noise_hu: float = 8.0,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> SyntheticCase:
    """Write a complete phantom case under ``root``: ``ct/``, ``rtstruct.dcm``, ``map.txt``.

    Returns the series, the paths and the ROIs (the truth) with the phantom region map.
    """
    root = Path(root)
    volume = render_phantom_ct(grid, body_overhang=body_overhang, noise_hu=noise_hu, seed=seed)
    series = write_ct_series(root / "ct", grid, volume, identity=identity,
                             patient_position=patient_position, shuffle=shuffle, seed=seed,
                             transfer_syntax=transfer_syntax)
    rois = phantom_rois(grid, vertices=vertices, body_overhang=body_overhang)
    rt_path = root / "rtstruct.dcm"
    write_rtstruct(rt_path, series, rois, seed=seed)
    map_path = write_region_map(root / "map.txt", PHANTOM_REGION_VALUES)
    return SyntheticCase(series, rt_path, map_path, rois, dict(PHANTOM_REGION_VALUES))


# --- helpers -----------------------------------------------------------------------------


def _uid(seed: int | str, *parts: object) -> str:
    """A valid, deterministic UID (2.25 form) from ``seed`` and ``parts``."""
    return str(generate_uid(prefix=None, entropy_srcs=[str(seed), *map(str, parts)]))


def _ds_number(x: float, decimals: int = _COORD_DECIMALS) -> pydicom.valuerep.DSfloat:
    """A DS value rounded to ``decimals`` and formatted within DICOM's 16 characters."""
    r = round(float(x), decimals)
    if r == 0:
        r = 0.0  # no "-0.0"
    return pydicom.valuerep.DSfloat(r, auto_format=True)
