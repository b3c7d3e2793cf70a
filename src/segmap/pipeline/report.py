"""The conversion report: what went in, what was painted, what was skipped, what came out.

The report is written as ``report.json`` beside the masks. Its dataclasses map one-to-one
onto the JSON objects; :meth:`ConvertReport.to_dict` is the JSON form and
:meth:`ConvertReport.from_dict` / :meth:`ConvertReport.load` read it back (strictly: see
:mod:`.report_read`). :meth:`ConvertReport.describe` says what it holds in the sentences a
person reads (:mod:`.report_text`): the command line, the batch summary, the job log and
the session page all show those. Units: voxel counts, volumes in mm³, times in seconds,
geometry in mm (LPS; ``voxel_to_ras`` is the NIfTI affine).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import segmap
from segmap.pipeline import report_text
from segmap.pipeline.report_read import ReportError, read_dataclass

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
class ReportInputs:
    """What was converted: the image series, the annotation and the native grid.

    ``grid`` is :meth:`segmap.imaging.grid.VoxelGrid.to_dict` of the series' grid.
    """

    image: ImageInput
    annotation: AnnotationInput
    grid: dict[str, Any]


@dataclass
class MapRegion:
    """One line of the region map: a label and its mask value."""

    label: str
    value: int


@dataclass
class MapInput:
    """The region map: where it came from, its checksum and its regions in paint order."""

    path: str | None
    sha256: str
    dtype: str
    regions: list[MapRegion]
    shared_values: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ContourCounts:
    """What became of an RTSTRUCT ROI's contours.

    ``skipped_by_reason`` counts skipped contours by ``off_every_slice_plane``, ``open``,
    ``point_or_degenerate`` and ``not_planar``; ``clipped_at_image_edge`` counts used
    contours partly outside the image; ``referencing_images_not_in_series`` those whose
    referenced image is not in the series; ``slices`` the slices that got a contour;
    ``plane_tolerance_mm`` the slice-assignment tolerance applied.
    """

    total: int
    used: int
    skipped: int
    skipped_by_reason: dict[str, int]
    clipped_at_image_edge: int
    referencing_images_not_in_series: int
    slices: int
    plane_tolerance_mm: float


@dataclass
class RegionRecord:
    """One ROI (RTSTRUCT) or segment (SEG) of the annotation and what became of it.

    ``status`` is ``painted`` (matched and has voxels), ``empty`` (matched but no voxel
    survived), or ``unmatched`` (its name matches no map label; not painted).
    ``voxels`` / ``volume_mm3`` are the region's own voxels on the native grid;
    ``painted_voxels`` those that carry its value in the composite (fewer where a later
    region overlaps it). ``contours`` is for RTSTRUCT, ``frames_used`` for SEG.
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
    contours: ContourCounts | None = None
    frames_used: int | None = None
    suggestions: list[str] = field(default_factory=list)


@dataclass
class UnmatchedRecord:
    """A region name that matches no map label, with the closest labels."""

    name: str
    number: int
    source: str
    suggestions: list[str]


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

    inputs: ReportInputs
    region_map: MapInput
    options: dict[str, Any]
    regions: list[RegionRecord]
    labels: list[LabelRecord]
    unmatched: list[UnmatchedRecord]
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
        Path(path).write_text(
            json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    @classmethod
    def from_dict(cls, data: object, *, source: str = "the report") -> ConvertReport:
        """The report whose JSON form (:meth:`to_dict`) is ``data``.

        Strict: the layout must be this version's (``report_format``), and every field
        must be present with its type; ``source`` begins each message.

        Raises:
            ReportError: another or unknown report format, a missing or unknown field,
                a value of the wrong type; the message names the field.
        """
        if not isinstance(data, dict):
            raise ReportError(f"{source}: a report is a JSON object, got {type(data).__name__}")
        if "report_format" not in data:
            raise ReportError(
                f"{source}: report_format is missing; this is not a segmap "
                "conversion report (report.json)"
            )
        version = data["report_format"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ReportError(
                f"{source}: report_format must be a whole number from 1, got "
                f"{version!r}; this is not a segmap conversion report"
            )
        if version > REPORT_FORMAT:
            raise ReportError(
                f"{source}: report_format {version} is newer than this segmap "
                f"({segmap.__version__}) reads (format {REPORT_FORMAT}); upgrade segmap "
                f"(it was written by segmap {data.get('segmap_version', 'of another version')})"
            )
        if version != REPORT_FORMAT:
            raise ReportError(
                f"{source}: report_format {version} is not one this segmap "
                f"reads (format {REPORT_FORMAT})"
            )
        return read_dataclass(cls, data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> ConvertReport:
        """Read a ``report.json`` written by :meth:`write`.

        Raises:
            ReportError: the file cannot be read, is not JSON, or is not a report this
                segmap reads (see :meth:`from_dict`); the message names the file.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ReportError(f"cannot read the report {path}: {reason}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(
                f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}); it is not a report segmap wrote whole"
            ) from None
        return cls.from_dict(data, source=str(path))

    def describe(self, *, outputs: bool = True) -> list[str]:
        """The report in sentences, one a line: every region painted, then everything
        left out or decided (:meth:`notes`), then, with ``outputs``, each file written."""
        return report_text.describe(self, outputs=outputs)

    def notes(self, *, overlaps: bool = True) -> list[str]:
        """Sentences for what the conversion left out or decided, and why: unmatched
        names (with the closest labels), empty regions, skipped contours, map labels
        absent from the annotation, overlaps (unless ``overlaps`` is False), warnings
        and fix-ups. Empty when there is nothing to say."""
        return report_text.notes(self, overlaps=overlaps)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
