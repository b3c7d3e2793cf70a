"""The conversion report: what went in, what was painted, what was skipped, what came out.

The report is written as ``report.json`` beside the masks. Its dataclasses map one-to-one
onto the JSON objects; :meth:`ConvertReport.to_dict` is the JSON form. Units: voxel
counts, volumes in mm³, times in seconds, geometry in mm (LPS; ``voxel_to_ras`` is the
NIfTI affine).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import segmap

REPORT_FORMAT = 1
"""Version of the report's JSON layout; bumped when a field changes meaning."""


@dataclass
class ImageInput:
    """The image series converted onto."""

    folder: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    slices: int
    series_description: str = ""
    patient_id: str = ""
    study_date: str = ""


@dataclass
class AnnotationInput:
    """The ROI collection (RTSTRUCT or SEG) converted."""

    path: str
    modality: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    referenced_series_uids: list[str]
    sha256: str = ""


@dataclass
class MapInput:
    """The region map: where it came from, its checksum and its regions in paint order."""

    path: str | None
    sha256: str
    dtype: str
    regions: list[dict[str, Any]]
    shared_values: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RegionRecord:
    """One ROI (RTSTRUCT) or segment (SEG) of the annotation and what became of it.

    ``status`` is ``painted`` (matched and has voxels), ``empty`` (matched but no voxel
    survived), or ``unmatched`` (its name matches no map label; not painted).
    ``voxels`` / ``volume_mm3`` are the region's own voxels on the native grid;
    ``painted_voxels`` those that carry its value in the composite (fewer where a later
    region overlaps it). ``contours`` holds, for RTSTRUCT, ``total``, ``used``,
    ``skipped`` by reason, ``clipped`` and ``referencing_missing_images``; ``frames_used``
    is for SEG.
    """

    source: str  # "ROI" or "segment"
    number: int
    name: str
    matched_label: str | None
    value: int | None
    status: str
    voxels: int = 0
    volume_mm3: float = 0.0
    painted_voxels: int = 0
    contours: dict[str, Any] | None = None
    frames_used: int | None = None
    suggestions: list[str] = field(default_factory=list)


@dataclass
class LabelRecord:
    """One map label: its value and the voxels it holds in the composite."""

    label: str
    value: int
    present: bool
    voxels: int
    volume_mm3: float


@dataclass
class OverlapRecord:
    """Voxels claimed by two regions; ``winner`` is the one painted (the later in the map)."""

    first: str
    second: str
    first_value: int
    second_value: int
    voxels: int
    winner: str


@dataclass
class OutputRecord:
    """One file written: what it holds, its grid, type, size and checksum."""

    name: str
    kind: str  # mask | image | mask_resampled | image_resampled | preview | ...
    grid: dict[str, Any] | None
    dtype: str | None
    bytes: int = 0
    sha256: str = ""


@dataclass
class ConvertReport:
    """Everything the design asks a conversion report to record."""

    inputs: dict[str, Any]
    region_map: MapInput
    options: dict[str, Any]
    regions: list[RegionRecord]
    labels: list[LabelRecord]
    unmatched: list[dict[str, Any]]
    absent_labels: list[str]
    overlaps: list[OverlapRecord]
    fixups: list[str]
    outputs: list[OutputRecord]
    timings_s: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    segmap_version: str = segmap.__version__
    report_format: int = REPORT_FORMAT
    created_utc: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report."""
        d = asdict(self)
        d["timings_s"] = {k: round(v, 4) for k, v in self.timings_s.items()}
        return d

    def write(self, path: str | Path) -> None:
        """Write the report as indented UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
