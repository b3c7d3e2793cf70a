"""The region map as a value: an ordered, immutable list of (label, value) regions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from segmap.labelmap.names import closest_names, normalise_name
from segmap.labelmap.problems import MapProblem, RegionMapError
from segmap.labelmap.rules import duplicate_problems, label_problem, value_problem

_NO_REGIONS = "the map has no regions; add at least one Label=Value"


@dataclass(frozen=True)
class Region:
    """One region: the label annotators use and the value painted into the mask.

    ``line`` is where the region was written (1-based; 0 when built in code). It is
    provenance, not identity: two regions with the same label and value are equal
    wherever they were written.
    """

    label: str
    value: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class RegionMap:
    """An ordered, validated set of regions; file order is paint order (later wins).

    Constructing one validates it: labels non-empty and unique after normalisation,
    values 1..65535, at least one region. Equality ignores line numbers and comments.
    """

    regions: tuple[Region, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        problems = entry_problems(
            [
                (r.line or i, f"{r.label}={r.value}", r.label, r.value)
                for i, r in enumerate(self.regions, start=1)
            ],
            empty_message=_NO_REGIONS,
        )
        if problems:
            raise RegionMapError(problems, source="<regions>")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, int]]) -> RegionMap:
        """Build a map from ``(label, value)`` pairs, validated like a file.

        Labels are trimmed as the parser trims them. Problems carry the 1-based position
        of the pair as their line, so an editor can point at the row.

        Raises:
            RegionMapError: every problem found, not just the first.
        """
        entries: list[tuple[int, str, Any, Any]] = []
        for label, value in pairs:
            trimmed = label.strip() if isinstance(label, str) else label
            entries.append((len(entries) + 1, f"{label}={value}", trimmed, value))
        problems = entry_problems(entries, empty_message=_NO_REGIONS)
        if problems:
            raise RegionMapError(problems, source="<pairs>")
        return cls(tuple(Region(label, value) for _, _, label, value in entries))

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in file order."""
        return tuple(r.label for r in self.regions)

    @property
    def values(self) -> tuple[int, ...]:
        """Values in file order (repeats kept when labels share a value)."""
        return tuple(r.value for r in self.regions)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Smallest unsigned mask type holding every value: uint8 up to 255, else uint16."""
        return np.dtype(np.uint8) if max(self.values) <= 255 else np.dtype(np.uint16)

    def shared_values(self) -> dict[int, tuple[str, ...]]:
        """Values used by more than one label (those labels merge into one class)."""
        by_value: dict[int, list[str]] = {}
        for r in self.regions:
            by_value.setdefault(r.value, []).append(r.label)
        return {v: tuple(labels) for v, labels in by_value.items() if len(labels) > 1}

    def to_text(self) -> str:
        """Canonical file text: one ``Label=Value`` line per region, LF endings, no comments."""
        return "".join(f"{r.label}={r.value}\n" for r in self.regions)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the canonical text (UTF-8): equal maps have equal checksums."""
        return hashlib.sha256(self.to_text().encode("utf-8")).hexdigest()

    @cached_property
    def _by_normalised(self) -> dict[str, Region]:
        return {normalise_name(r.label): r for r in self.regions}

    def match(self, name: str, *, strict: bool = False) -> Region | None:
        """The region an annotation's name refers to, or None.

        By default names are compared normalised (NFKC, trimmed, inner whitespace
        collapsed, case-folded: ``" LIVER "`` finds ``Liver``); ``strict`` compares the
        exact strings.
        """
        if strict:
            return next((r for r in self.regions if r.label == name), None)
        return self._by_normalised.get(normalise_name(name))

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` map labels closest to ``name``, best first (may be empty)."""
        return closest_names(name, self.labels, limit)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"regions": [{"label", "value"}], "sha256", "dtype"}``."""
        return {
            "regions": [{"label": r.label, "value": r.value} for r in self.regions],
            "sha256": self.sha256,
            "dtype": self.dtype.name,
        }


def entry_problems(
    entries: Sequence[tuple[int, str, Any, Any]], *, empty_message: str
) -> list[MapProblem]:
    """Every problem of ``(line, text, label, value)`` entries, sorted by line.

    ``label`` should already be trimmed; ``value`` should be an int (anything else is
    reported). Importers use this so a map from any format obeys the same rules and
    messages as a map file.
    """
    if not entries:
        return [MapProblem(0, "", empty_message)]
    problems: list[MapProblem] = []
    valid_labels: list[tuple[int, str]] = []
    texts: list[str] = []
    for line, text, label, value in entries:
        if not isinstance(label, str):
            problems.append(MapProblem(line, text, f"the label {label!r} is not text"))
        elif message := label_problem(label):
            problems.append(MapProblem(line, text, message))
        else:
            valid_labels.append((line, label))
            texts.append(text)
        if message := value_problem(value):
            problems.append(MapProblem(line, text, message))
    for index, message in duplicate_problems(valid_labels).items():
        problems.append(MapProblem(valid_labels[index][0], texts[index], message))
    problems.sort(key=lambda p: p.line)
    return problems


def build_region_map(
    entries: Sequence[tuple[int, str, Any, Any]], *, source: str, empty_message: str
) -> RegionMap:
    """A map from ``(line, text, label, value)`` entries, regions keeping ``line``.

    Raises:
        RegionMapError: naming ``source``, with every problem of the entries.
    """
    problems = entry_problems(entries, empty_message=empty_message)
    if problems:
        raise RegionMapError(problems, source=source)
    return RegionMap(tuple(Region(label, value, line) for line, _, label, value in entries))
