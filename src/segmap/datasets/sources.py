"""The conversions a dataset draws on, as their ``report.json`` describes them.

A :class:`Conversion` is one successful ``segmap convert`` (or batch case, or server job):
its output files by kind and the facts a dataset records about it, read from the report
the conversion wrote (see :mod:`segmap.pipeline.report`). The report is the one place
these facts are decided; nothing is read from DICOM again.

Who drew the annotation (``annotator``) and what the collection is called
(``collection``) are not in the report: the caller that finds the conversion (a batch
tree, the server's database) supplies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segmap.datasets.errors import DatasetError
from segmap.pipeline.convert import (
    IMAGE_NAME,
    IMAGE_RESAMPLED_NAME,
    MASK_NAME,
    MASK_RESAMPLED_NAME,
)
from segmap.pipeline.report import REPORT_FORMAT

NATIVE = ("image", "mask")
"""Output kinds of the image/mask pair on the scan's own grid."""
RESAMPLED = ("image_resampled", "mask_resampled")
"""Output kinds of the pair resampled to the conversion's spacing (``--spacing``)."""
FILE_NAMES = {
    "image": IMAGE_NAME,
    "mask": MASK_NAME,
    "image_resampled": IMAGE_RESAMPLED_NAME,
    "mask_resampled": MASK_RESAMPLED_NAME,
}


@dataclass(frozen=True)
class OutputFile:
    """One NIfTI output of a conversion.

    Attributes:
        path: where it is now.
        sha256: the checksum the report recorded when it was written.
        size_ijk: voxels along i, j, k.
        spacing_mm: voxel spacing along i, j, k in mm.
    """

    path: Path
    sha256: str
    size_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]


@dataclass(frozen=True)
class UnmatchedName:
    """A region name of the annotation that the map did not hold (it was skipped)."""

    name: str
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversion:
    """A successful conversion that can become a dataset case.

    Attributes:
        key: where it came from, for messages and the manifest (a batch case name such as
            ``patient7/rtstruct``, or a server conversion id); unique within one source.
        report_path: its ``report.json``.
        outputs: NIfTI outputs by kind (``image``, ``mask``, ``image_resampled``, ...).
        subject: the patient (DICOM PatientID); folds never split one subject.
        session: the imaging session (StudyInstanceUID, or the server's session label).
        collection: the ROI collection's name (the batch case name, or the server's).
        annotator: who drew it, when known ("" otherwise).
        study_instance_uid, series_instance_uid: the scan converted onto.
        annotation_sop_instance_uid, annotation_series_instance_uid: the ROI collection.
        annotation_modality: ``RTSTRUCT`` or ``SEG``.
        modality: the scan's modality (``CT``, ``MR``, ...).
        map_regions: the region map it was converted with, ``(label, value)`` in map order.
        map_sha256: that map's checksum.
        segmap_version: the segmap that converted it.
        unmatched: region names skipped because the map does not hold them.
    """

    key: str
    report_path: Path
    outputs: Mapping[str, OutputFile]
    subject: str
    session: str
    collection: str
    annotator: str
    study_instance_uid: str
    series_instance_uid: str
    annotation_sop_instance_uid: str
    annotation_series_instance_uid: str
    annotation_modality: str
    modality: str
    map_regions: tuple[tuple[str, int], ...]
    map_sha256: str
    segmap_version: str
    unmatched: tuple[UnmatchedName, ...] = field(default=())

    def pair(self, resampled: bool) -> tuple[OutputFile, OutputFile] | None:
        """``(image, mask)`` at the scan's grid, or resampled; None if not written."""
        kinds = RESAMPLED if resampled else NATIVE
        if all(k in self.outputs for k in kinds):
            return self.outputs[kinds[0]], self.outputs[kinds[1]]
        return None


class _Reader:
    """Reads required fields of one report, naming the report and the field when absent."""

    def __init__(self, data: Any, path: Path) -> None:
        self.data = data
        self.path = path

    def get(self, dotted: str, kind: type | tuple[type, ...] = str) -> Any:
        node = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise DatasetError(
                    f"{self.path}: field {dotted} is missing; this report was not written by "
                    "segmap convert, or by a version this one cannot read; convert the case "
                    "again"
                )
            node = node[part]
        if not isinstance(node, kind) or isinstance(node, bool) and kind is not bool:
            raise DatasetError(
                f"{self.path}: field {dotted} has the wrong type "
                f"({type(node).__name__}); convert the case again"
            )
        return node

    def text(self, dotted: str) -> str:
        value = self.data
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value if isinstance(value, str) else ""


def conversion_from_report(
    report: Mapping[str, Any],
    report_path: Path,
    *,
    key: str,
    collection: str = "",
    annotator: str = "",
    session: str | None = None,
) -> Conversion:
    """The :class:`Conversion` a parsed ``report.json`` describes.

    Output files are expected beside the report, under the names the report gives.
    ``session`` defaults to the scan's StudyInstanceUID and ``collection`` to ``key``.

    Raises:
        DatasetError: the report lacks a field a dataset needs, or is of a newer format.
    """
    r = _Reader(report, report_path)
    fmt = r.get("report_format", int)
    if fmt > REPORT_FORMAT:
        raise DatasetError(
            f"{report_path}: report format {fmt} is newer than this segmap "
            f"reads ({REPORT_FORMAT}); upgrade segmap"
        )
    folder = report_path.parent
    outputs: dict[str, OutputFile] = {}
    for i, out in enumerate(r.get("outputs", list)):
        o = _Reader(out, report_path)
        kind = o.text("kind")
        if kind not in FILE_NAMES:
            continue
        name = o.get("name")
        if Path(name).name != name:
            raise DatasetError(f"{report_path}: outputs[{i}].name {name!r} is not a file name")
        size = o.get("grid.size_ijk", list)
        spacing = o.get("grid.spacing_mm", list)
        outputs[kind] = OutputFile(
            folder / name,
            o.get("sha256"),
            (int(size[0]), int(size[1]), int(size[2])),
            (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        )
    regions = tuple(
        (_Reader(x, report_path).get("label"), _Reader(x, report_path).get("value", int))
        for x in r.get("region_map.regions", list)
    )
    unmatched = tuple(
        UnmatchedName(str(u.get("name", "")), tuple(str(s) for s in u.get("suggestions", [])))
        for u in r.get("unmatched", list)
        if isinstance(u, dict)
    )
    return Conversion(
        key=key,
        report_path=report_path,
        outputs=outputs,
        subject=r.text("inputs.image.patient_id").strip(),
        session=session if session is not None else r.get("inputs.image.study_instance_uid"),
        collection=collection or key,
        annotator=annotator,
        study_instance_uid=r.get("inputs.image.study_instance_uid"),
        series_instance_uid=r.get("inputs.image.series_instance_uid"),
        annotation_sop_instance_uid=r.get("inputs.annotation.sop_instance_uid"),
        annotation_series_instance_uid=r.text("inputs.annotation.series_instance_uid"),
        annotation_modality=r.get("inputs.annotation.modality"),
        modality=r.text("inputs.image.modality") or "unknown",
        map_regions=regions,
        map_sha256=r.get("region_map.sha256"),
        segmap_version=r.get("segmap_version"),
        unmatched=unmatched,
    )
