"""Synthetic DICOM for the imaging server tests, written with ``segmap.testing``.

Small grids (fast to write and upload); every fact a test asserts (UIDs, slice counts,
ROI names, bytes) is read from what was written here, never from the server.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from segmap.testing import (
    StudyIdentity,
    SyntheticROI,
    WrittenSeries,
    axial_grid,
    phantom_rois,
    write_ct_series,
    write_rtstruct,
)

GRID_SIZE = (24, 20, 4)  # columns, rows, slices
GRID_SPACING = (1.0, 1.0, 2.5)  # mm


@dataclass(frozen=True)
class Study:
    """A written study: its identity and series (in the order asked for)."""

    identity: StudyIdentity
    series: tuple[WrittenSeries, ...]

    @property
    def files(self) -> list[Path]:
        """Every file of every series."""
        return [f for s in self.series for f in s.files]


def write_study(
    root: Path,
    seed: int,
    patient_id: str,
    series_numbers: Sequence[int] = (2,),
    slices: int = GRID_SIZE[2],
    description: str = "Synthetic CT",
) -> Study:
    """A study of ``len(series_numbers)`` CT series sharing one frame of reference."""
    identity = StudyIdentity.generate(seed, patient_id=patient_id)
    grid = axial_grid((GRID_SIZE[0], GRID_SIZE[1], slices), GRID_SPACING)
    written = []
    for number in series_numbers:
        volume = np.full(grid.array_shape, -1000.0)
        volume[:, 5:15, 6:18] = 40.0
        written.append(
            write_ct_series(
                root / f"{patient_id}-s{number}",
                grid,
                volume,
                identity=identity,
                seed=seed,
                series_number=number,
                series_description=f"{description} {number}",
                file_prefix=f"{patient_id}-s{number}-",
            )
        )
    return Study(identity, tuple(written))


def write_phantom_rtstruct(
    path: Path, series: WrittenSeries, label: str = "annotator"
) -> list[str]:
    """The phantom's ROIs as an RTSTRUCT on ``series``; returns the ROI names in file order."""
    rois: tuple[SyntheticROI, ...] = phantom_rois(series.grid)
    write_rtstruct(path, series, rois, label=label)
    return [r.name for r in rois]


def write_seg(path: Path, series: WrittenSeries, labels: Sequence[str]) -> Path:
    """A BINARY highdicom SEG on ``series`` with one box-shaped segment per label."""
    sources = [pydicom.dcmread(f) for f in series.files]  # files[k] is slice k
    nk, nj, ni = series.grid.array_shape
    pixels = np.zeros((nk, nj, ni, len(labels)), dtype=np.uint8)
    for n in range(len(labels)):
        pixels[:, 2 + 3 * n : 5 + 3 * n, 3:9, n] = 1
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=n + 1,
                segment_label=label,
                segmented_property_category=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
                segmented_property_type=hd.sr.CodedConcept("10200004", "SCT", "Liver"),
                algorithm_type="MANUAL",
            )
            for n, label in enumerate(labels)
        ],
        series_instance_uid=hd.UID(),
        series_number=60,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="segmap tests",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(path)
    return path


def multipart(
    paths: Sequence[Path], names: Sequence[str] | None = None
) -> list[tuple[str, tuple[str, bytes, str]]]:
    """``files=`` argument of the test client: one ``files`` part per path."""
    shown = names or [p.name for p in paths]
    return [
        ("files", (name, p.read_bytes(), "application/dicom"))
        for name, p in zip(shown, paths, strict=True)
    ]


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deflated zip of ``entries`` (name -> bytes), names written exactly as given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()
