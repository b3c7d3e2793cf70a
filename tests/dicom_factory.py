"""Synthetic DICOM image series for tests: write a CT (or MR) series for a given grid.

Reusable by every test module: give a :class:`VoxelGrid` and a volume ``[k, j, i]`` in
modality units; get one single-frame file per slice whose headers describe exactly that
grid (ImagePositionPatient of slice k = origin + k * dk * k-direction, the row/column
cosines are the i/j directions, PixelSpacing = [dj, di]). File names and InstanceNumbers
are shuffled on request so a loader cannot lean on them.

Geometry is written from the grid given, with no help from segmap's loader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from segmap.imaging.grid import VoxelGrid


@dataclass
class SeriesSpec:
    """Identity and value encoding of a synthetic series.

    ``slope``/``intercept`` map stored values to modality units (HU for CT); the stored
    type is ``stored_dtype`` when given (e.g. ``"uint8"``), else uint16 when every stored
    value is non-negative, else int16.
    """

    modality: str = "CT"
    patient_position: str = "HFS"
    slope: float = 1.0
    intercept: float = -1024.0
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str | None = field(default_factory=generate_uid)
    series_description: str = "synthetic"
    patient_id: str = "SYNTH01"
    stored_dtype: str | None = None


def stored_values(volume: npt.NDArray[np.generic], spec: SeriesSpec) -> npt.NDArray[np.generic]:
    """Stored pixel values for modality values ``volume`` under the spec's rescale."""
    stored = np.rint((np.asarray(volume, dtype=np.float64) - spec.intercept) / spec.slope)
    if spec.stored_dtype is not None:
        info = np.iinfo(np.dtype(spec.stored_dtype))
        assert info.min <= stored.min() and stored.max() <= info.max
        return stored.astype(spec.stored_dtype)
    if stored.min() >= 0:
        assert stored.max() <= 65535
        return stored.astype(np.uint16)
    assert stored.min() >= -32768 and stored.max() <= 32767
    return stored.astype(np.int16)


def slice_dataset(
    grid: VoxelGrid,
    k: int,
    pixels: npt.NDArray[np.generic],
    spec: SeriesSpec,
    *,
    instance_number: int,
    position_lps: Sequence[float] | None = None,
) -> Dataset:
    """One single-frame image of slice ``k`` of ``grid`` holding stored ``pixels`` ``[j, i]``."""
    d = np.asarray(grid.direction, dtype=float)
    origin = np.asarray(grid.origin_lps, dtype=float)
    ipp = origin + k * grid.spacing[2] * d[:, 2] if position_lps is None else position_lps
    sop_class = CTImageStorage if spec.modality == "CT" else MRImageStorage
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    if spec.frame_of_reference_uid is not None:
        ds.FrameOfReferenceUID = spec.frame_of_reference_uid
    ds.Modality = spec.modality
    ds.PatientID = spec.patient_id
    ds.PatientName = "Synthetic^Series"
    ds.StudyDate = "20240101"
    ds.SeriesDescription = spec.series_description
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.PatientPosition = spec.patient_position
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*d[:, 0], *d[:, 1])]
    ds.PixelSpacing = [f"{grid.spacing[1]:.6f}", f"{grid.spacing[0]:.6f}"]
    ds.SliceThickness = f"{grid.spacing[2]:.6f}"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    bits = 8 * pixels.dtype.itemsize
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if np.issubdtype(pixels.dtype, np.signedinteger) else 0
    ds.RescaleSlope = f"{spec.slope:g}"
    ds.RescaleIntercept = f"{spec.intercept:g}"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def write_series(
    folder: Path,
    grid: VoxelGrid,
    volume_kji: npt.NDArray[np.generic],
    spec: SeriesSpec | None = None,
    *,
    shuffle: bool = True,
    seed: int = 0,
    positions_lps: Sequence[Sequence[float]] | None = None,
    edit: Callable[[int, Dataset], None] | None = None,
) -> list[Path]:
    """Write ``volume_kji`` (modality units) as one file per slice into ``folder``.

    Args:
        positions_lps: override ImagePositionPatient per slice (to make gaps, shears).
        edit: called with ``(k, dataset)`` before each file is saved (to break headers).
        shuffle: give files random names and InstanceNumbers unrelated to ``k``.

    Returns:
        the file of each slice, index ``k`` of ``grid``.
    """
    spec = spec or SeriesSpec()
    folder.mkdir(parents=True, exist_ok=True)
    nk = grid.size[2]
    assert volume_kji.shape == grid.array_shape
    stored = stored_values(volume_kji, spec)
    rng = np.random.default_rng(seed)
    order = rng.permutation(nk) if shuffle else np.arange(nk)
    paths: list[Path] = []
    for k in range(nk):
        ds = slice_dataset(
            grid,
            k,
            stored[k],
            spec,
            instance_number=int(order[k]) + 1,
            position_lps=None if positions_lps is None else positions_lps[k],
        )
        if edit is not None:
            edit(k, ds)
        name = f"IM{int(order[k]):05d}_{rng.integers(1 << 30):x}.dcm" if shuffle else f"{k:05d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def rotation(axis: Sequence[float], degrees: float) -> npt.NDArray[np.float64]:
    """3x3 rotation matrix about ``axis`` by ``degrees`` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    t = np.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)
