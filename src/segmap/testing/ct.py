"""Writing a synthetic CT series: any voxel grid and a Hounsfield volume, one file a slice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from segmap.imaging.grid import VoxelGrid
from segmap.testing.dicomfields import (
    COORD_DECIMALS,
    COSINE_DECIMALS,
    StudyIdentity,
    ds_number,
    make_uid,
    set_patient_study,
)

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")

HU_INTERCEPT = -1024.0
"""RescaleIntercept written to every synthetic CT slice (stored value = HU + 1024)."""


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
    series_uid = make_uid(seed, "series", identity.study_instance_uid, series_number)
    for_uid = frame_of_reference_uid or make_uid(seed, "for", identity.study_instance_uid)
    nk = grid.size[2]
    rng = np.random.default_rng(seed)
    order = rng.permutation(nk) if shuffle else np.arange(nk)
    sop_uids = tuple(make_uid(seed, "sop", series_uid, k) for k in range(nk))
    positions = tuple(_slice_position(grid, k) for k in range(nk))
    template = _ct_template(
        grid, identity, series_uid, for_uid, patient_position, series_description, series_number
    )
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
    r = np.round(p, COORD_DECIMALS)
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
    set_patient_study(ds, identity)
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
    ds.ImageOrientationPatient = [ds_number(x, COSINE_DECIMALS) for x in (*d[:, 0], *d[:, 1])]
    ds.PixelSpacing = [ds_number(grid.spacing[1]), ds_number(grid.spacing[0])]
    ds.SliceThickness = ds_number(grid.spacing[2])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = grid.size[1]
    ds.Columns = grid.size[0]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = ds_number(HU_INTERCEPT)
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
    ds.ImagePositionPatient = [ds_number(x) for x in position]
    ds.SliceLocation = ds_number(float(np.dot(position, grid.slice_normal_lps)))
    stored = np.clip(np.rint(np.asarray(plane_hu, dtype=float) - HU_INTERCEPT), 0, 65535)
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds
