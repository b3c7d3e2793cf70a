"""The QA report of a dataset: what a person checks before training on it.

Per region (class of the dataset): how many cases have it, the distribution of its
volume in mL with robust-z outliers flagged (:mod:`.robust`), and a picture
(:mod:`.plots`). Then the cases that lack a region most cases have (present in more than
half of them), the conversions left out because their masks hold values the map does not,
the scans with several collections and the agreement between them (:mod:`.agreement`),
and the region names that matched no map label and were skipped, counted over the cases.

The JSON form (``qa.json``) is versioned by ``qa_format``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from segmap.datasets.labels import LabelTable
from segmap.datasets.qa.casestats import MaskStats
from segmap.datasets.qa.robust import THRESHOLD, is_outlier, robust_z

QA_FORMAT = 1


@dataclass(frozen=True)
class CaseVolume:
    """One case's volume of one region (mL), its robust z-score and whether it is flagged."""

    case: str
    volume_ml: float
    robust_z: float
    outlier: bool


@dataclass(frozen=True)
class RegionQA:
    """One class: its name and values, the cases with it and its volume distribution."""

    value: int
    name: str
    map_value: int
    cases_with: int
    cases_total: int
    median_ml: float | None
    min_ml: float | None
    max_ml: float | None
    volumes: tuple[CaseVolume, ...]
    plot: str

    @property
    def plot_title(self) -> str:
        """The heading of this region's picture."""
        return f"{self.name} (label {self.value}, map value {self.map_value})"


@dataclass(frozen=True)
class MissingRegion:
    """A case without a region that ``present_in`` of the dataset's cases have."""

    case: str
    region: str
    value: int
    present_in: int


@dataclass(frozen=True)
class UnexpectedValues:
    """A conversion left out because its mask holds values the map does not."""

    source_key: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class RegionAgreement:
    """Dice (0..1) and HD95 (mm) of one region between two collections; None: undefined."""

    region: str
    value: int
    dice: float | None
    hd95_mm: float | None


@dataclass(frozen=True)
class CollectionAgreement:
    """Two collections of one scan, and how their regions agree.

    ``cases`` names the dataset's case of each collection; ``""`` for a collection the
    dataset does not take (the server's datasets take one collection per scan and
    compare the scan's other collections with it).
    """

    series_instance_uid: str
    cases: tuple[str, str]
    collections: tuple[str, str]
    regions: tuple[RegionAgreement, ...]


@dataclass(frozen=True)
class UnmatchedSummary:
    """A region name the map did not hold, in how many cases, and the closest labels."""

    name: str
    cases: int
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseInput:
    """What the report needs of one case: its name, where it came from, its mask's counts."""

    case: str
    source_key: str
    stats: MaskStats


@dataclass(frozen=True)
class DatasetQA:
    """The whole report; see the module docstring."""

    cases: int
    regions: tuple[RegionQA, ...]
    missing_regions: tuple[MissingRegion, ...]
    unexpected_values: tuple[UnexpectedValues, ...]
    multiple_collections: tuple[CollectionAgreement, ...]
    unmatched_names: tuple[UnmatchedSummary, ...]
    robust_z_threshold: float = THRESHOLD
    qa_format: int = QA_FORMAT

    @property
    def outliers(self) -> list[tuple[RegionQA, CaseVolume]]:
        """Every flagged volume with its region."""
        return [(r, v) for r in self.regions for v in r.volumes if v.outlier]

    def to_dict(self) -> dict[str, Any]:
        """JSON form; ``outliers`` is listed on its own too, for readers in a hurry."""
        d = asdict(self)
        d["outliers"] = [
            {
                "case": v.case,
                "region": r.name,
                "value": r.value,
                "volume_ml": v.volume_ml,
                "robust_z": v.robust_z,
            }
            for r, v in self.outliers
        ]
        return {"qa_format": self.qa_format, **{k: v for k, v in d.items() if k != "qa_format"}}

    def to_json(self) -> str:
        """Indented UTF-8 JSON text ending in a newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetQA:
        """Read the JSON form back (``outliers`` is derived, so it is not read)."""
        return cls(
            cases=int(d["cases"]),
            regions=tuple(
                RegionQA(**{**r, "volumes": tuple(CaseVolume(**v) for v in r["volumes"])})
                for r in d["regions"]
            ),
            missing_regions=tuple(MissingRegion(**m) for m in d["missing_regions"]),
            unexpected_values=tuple(
                UnexpectedValues(u["source_key"], tuple(u["values"]))
                for u in d["unexpected_values"]
            ),
            multiple_collections=tuple(
                CollectionAgreement(
                    a["series_instance_uid"],
                    (a["cases"][0], a["cases"][1]),
                    (a["collections"][0], a["collections"][1]),
                    tuple(RegionAgreement(**r) for r in a["regions"]),
                )
                for a in d["multiple_collections"]
            ),
            unmatched_names=tuple(
                UnmatchedSummary(u["name"], u["cases"], tuple(u["suggestions"]))
                for u in d["unmatched_names"]
            ),
            robust_z_threshold=float(d["robust_z_threshold"]),
            qa_format=int(d["qa_format"]),
        )


def plot_name(value: int) -> str:
    """File name of a region's picture, by label value (safe whatever the region's name)."""
    return f"qa/label_{value:03d}.png"


@dataclass
class _Unmatched:
    cases: int = 0
    suggestions: list[str] = field(default_factory=list)


def build_qa(
    table: LabelTable,
    cases: Sequence[CaseInput],
    *,
    unexpected: Sequence[UnexpectedValues] = (),
    agreements: Sequence[CollectionAgreement] = (),
    unmatched: Sequence[Sequence[tuple[str, Sequence[str]]]] = (),
) -> DatasetQA:
    """The report of a dataset's cases.

    Args:
        table: the dataset's classes.
        cases: every case of the dataset, in manifest order.
        unexpected: conversions left out for values the map does not hold.
        agreements: scans with several collections (see :mod:`.agreement`).
        unmatched: per case, the ``(name, suggestions)`` its conversion skipped.
    """
    n = len(cases)
    regions: list[RegionQA] = []
    missing: list[MissingRegion] = []
    for cls in table.classes:
        have = [c for c in cases if c.stats.voxels.get(cls.map_value, 0) > 0]
        vols = [round(c.stats.volume_ml(cls.map_value), 4) for c in have]
        zs = robust_z(vols)
        volumes = tuple(
            CaseVolume(c.case, v, round(z, 3), is_outlier(z))
            for c, v, z in zip(have, vols, zs, strict=True)
        )
        ordered = sorted(vols)
        regions.append(
            RegionQA(
                cls.value,
                cls.name,
                cls.map_value,
                len(have),
                n,
                _median(ordered),
                ordered[0] if ordered else None,
                ordered[-1] if ordered else None,
                volumes,
                plot_name(cls.value),
            )
        )
        if 2 * len(have) > n:
            names = {c.case for c in have}
            missing.extend(
                MissingRegion(c.case, cls.name, cls.value, len(have))
                for c in cases
                if c.case not in names
            )
    return DatasetQA(
        n,
        tuple(regions),
        tuple(missing),
        tuple(unexpected),
        tuple(agreements),
        _unmatched(unmatched),
    )


def _median(ordered: Sequence[float]) -> float | None:
    if not ordered:
        return None
    mid = len(ordered) // 2
    value = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return round(value, 4)


def _unmatched(
    per_case: Sequence[Sequence[tuple[str, Sequence[str]]]],
) -> tuple[UnmatchedSummary, ...]:
    found: dict[str, _Unmatched] = {}
    for names in per_case:
        for name in dict.fromkeys(n for n, _ in names):  # once per case
            found.setdefault(name, _Unmatched()).cases += 1
        for name, suggestions in names:
            entry = found[name]
            entry.suggestions.extend(s for s in suggestions if s not in entry.suggestions)
    return tuple(
        UnmatchedSummary(name, u.cases, tuple(u.suggestions[:3]))
        for name, u in sorted(found.items(), key=lambda kv: (-kv[1].cases, kv[0]))
    )
