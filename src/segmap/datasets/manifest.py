"""The frozen manifest of a dataset: everything needed to export it again, byte for byte.

A manifest is JSON (``manifest.json``), versioned by ``manifest_format``. It records the
dataset (name, id, region map and its checksum, native or resampled pairs and their
spacing, folds and seed, the filter it was selected with) and, per case, where it came
from (subject, session, collection, annotator, the scan's and the ROI collection's UIDs,
the map checksum and segmap version of the conversion) and its two files (image and
mask) with their SHA-256 and size. Cases that were offered but left out are listed with
the reason. Exports check every file against its SHA-256 before using it.

The manifest holds subjects' PatientIDs (folds are grouped by them); layouts put it in
the dataset as provenance, but no file name ever carries them (see :mod:`.naming`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segmap.datasets.errors import DatasetError
from segmap.datasets.labels import LabelTable
from segmap.labelmap import RegionMap

MANIFEST_FORMAT = 1
"""Version of the manifest's JSON layout; bumped when a field changes meaning."""


@dataclass(frozen=True)
class FileRecord:
    """One file of a case: its checksum, size, and where it was read from when frozen."""

    sha256: str
    bytes: int
    source: str


@dataclass(frozen=True)
class CaseRecord:
    """One image/mask pair of the dataset and where it came from.

    Attributes:
        name: the case's file-system-safe name (``case_<hex>``, see :mod:`.naming`).
        fold: its cross-validation fold (0-based).
        subject, session, collection, annotator: as :class:`.sources.Conversion`.
        source_key: the conversion it came from (batch case name, server id).
        study_instance_uid, series_instance_uid: the scan.
        annotation_sop_instance_uid, annotation_series_instance_uid, annotation_modality:
            the ROI collection.
        modality: the scan's modality.
        map_sha256, segmap_version: of the conversion.
        size_ijk, spacing_mm: the pair's grid (voxels; mm along i, j, k).
        image, mask: the two files.
    """

    name: str
    fold: int
    subject: str
    session: str
    collection: str
    annotator: str
    source_key: str
    study_instance_uid: str
    series_instance_uid: str
    annotation_sop_instance_uid: str
    annotation_series_instance_uid: str
    annotation_modality: str
    modality: str
    map_sha256: str
    segmap_version: str
    size_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    image: FileRecord
    mask: FileRecord


@dataclass(frozen=True)
class ExcludedCase:
    """A conversion offered to the dataset but left out, and why."""

    source_key: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """A frozen dataset; see the module docstring."""

    name: str
    dataset_id: int
    region_map: RegionMap
    resampled: bool
    spacing_mm: tuple[float, float, float] | None
    modality: str
    folds: int
    seed: int
    filter: dict[str, list[str]]
    cases: tuple[CaseRecord, ...]
    created_utc: str
    segmap_version: str
    excluded: tuple[ExcludedCase, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())
    manifest_format: int = MANIFEST_FORMAT

    @property
    def labels(self) -> LabelTable:
        """The dataset's classes and their renumbering from the map's values."""
        return LabelTable(self.region_map)

    def cases_in_fold(self, fold: int) -> list[CaseRecord]:
        """The cases of ``fold``, in manifest order."""
        return [c for c in self.cases if c.fold == fold]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (keys in a fixed order, so equal manifests give equal text)."""
        d = asdict(self)
        d["region_map"] = self.region_map.to_dict()
        return {
            "manifest_format": self.manifest_format,
            **{k: v for k, v in d.items() if k != "manifest_format"},
        }

    def to_json(self) -> str:
        """Indented UTF-8 JSON text ending in a newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "manifest") -> Manifest:
        """Read a manifest's JSON form.

        Raises:
            DatasetError: a newer format, or a missing or malformed field (named).
        """
        if not isinstance(data, Mapping):
            raise DatasetError(f"{source}: a manifest is a JSON object")
        fmt = data.get("manifest_format")
        if not isinstance(fmt, int) or fmt > MANIFEST_FORMAT:
            raise DatasetError(
                f"{source}: manifest_format {fmt!r} is not one this segmap "
                f"reads (1 to {MANIFEST_FORMAT}); upgrade segmap"
            )
        try:
            rmap = RegionMap.from_pairs(
                (r["label"], r["value"]) for r in data["region_map"]["regions"]
            )
            if rmap.sha256 != data["region_map"]["sha256"]:
                raise DatasetError(
                    f"{source}: region_map.sha256 does not match its regions; "
                    "the manifest was edited"
                )
            spacing = data["spacing_mm"]
            return cls(
                name=str(data["name"]),
                dataset_id=int(data["dataset_id"]),
                region_map=rmap,
                resampled=bool(data["resampled"]),
                spacing_mm=_triple(spacing, float) if spacing is not None else None,
                modality=str(data["modality"]),
                folds=int(data["folds"]),
                seed=int(data["seed"]),
                filter={str(k): [str(x) for x in v] for k, v in data["filter"].items()},
                cases=tuple(_case(c) for c in data["cases"]),
                created_utc=str(data["created_utc"]),
                segmap_version=str(data["segmap_version"]),
                excluded=tuple(
                    ExcludedCase(str(e["source_key"]), str(e["reason"]))
                    for e in data.get("excluded", [])
                ),
                warnings=tuple(str(w) for w in data.get("warnings", [])),
                manifest_format=fmt,
            )
        except DatasetError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(
                f"{source}: not a complete segmap dataset manifest "
                f"({type(exc).__name__}: {exc}); freeze the dataset again"
            ) from None

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """Read ``manifest.json``.

        Raises:
            DatasetError: unreadable, not JSON, or not a manifest (see :meth:`from_dict`).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: cannot be read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        return cls.from_dict(data, source=str(path))


def _triple(values: Any, kind: type) -> Any:
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"expected three numbers, got {values!r}")
    return tuple(kind(v) for v in values)


def _file(d: Mapping[str, Any]) -> FileRecord:
    return FileRecord(str(d["sha256"]), int(d["bytes"]), str(d["source"]))


def _case(d: Mapping[str, Any]) -> CaseRecord:
    text = (
        "name",
        "subject",
        "session",
        "collection",
        "annotator",
        "source_key",
        "study_instance_uid",
        "series_instance_uid",
        "annotation_sop_instance_uid",
        "annotation_series_instance_uid",
        "annotation_modality",
        "modality",
        "map_sha256",
        "segmap_version",
    )
    return CaseRecord(
        fold=int(d["fold"]),
        size_ijk=_triple(d["size_ijk"], int),
        spacing_mm=_triple(d["spacing_mm"], float),
        image=_file(d["image"]),
        mask=_file(d["mask"]),
        **{k: str(d[k]) for k in text},
    )
