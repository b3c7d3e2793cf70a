"""What every label format module provides, and the pieces they share."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segmap.errors import SegmapError
from segmap.labelmap.colour_comments import colour_comment_lines
from segmap.labelmap.model import Region, RegionMap, entry_problems
from segmap.labelmap.palette import RGBA, colour_for_value
from segmap.labelmap.problems import MapProblem, RegionMapError

NO_REGIONS = "the file names no regions (background aside), so there is nothing to import"


class LabelFormatError(SegmapError):
    """A file that is not a readable instance of the label format it was said to be."""

    def __init__(self, message: str, path: str) -> None:
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class Imported:
    """A region map read from another format, with the colours that format held.

    Attributes:
        region_map: the regions, in the order the file lists them.
        colours: RGBA (0..255) by mask value, for formats that have colours.
    """

    region_map: RegionMap
    colours: dict[int, RGBA] = field(default_factory=dict)

    def to_map_text(self, *, source: str = "") -> str:
        """The region map file to write: canonical lines, preceded by colour comments
        when the imported format had colours, so a later export keeps them."""
        lines = colour_comment_lines(self.colours, list(self.region_map.values))
        if not lines:
            return self.region_map.to_text()
        origin = f" from {source}" if source else ""
        header = [
            f"# Colours{origin}, kept for export (a region map has none):",
            *lines,
        ]
        return "\n".join(header) + "\n" + self.region_map.to_text()


@dataclass(frozen=True)
class LabelFormat:
    """One import/export format.

    Attributes:
        name: the command line's name for it (``--to NAME``).
        title: how messages and help name it.
        default_filename: a conventional file name for an export.
        has_colours: whether the format stores a colour per value.
        dump: ``(map, colours by value) -> file text``.
        load: ``(file text, source name) -> Imported``.
    """

    name: str
    title: str
    default_filename: str
    has_colours: bool
    dump: Callable[[RegionMap, Mapping[int, RGBA]], str]
    load: Callable[[str, str], Imported]


def colour_of(value: int, colours: Mapping[int, RGBA]) -> RGBA:
    """The colour given for ``value``, else the palette's."""
    return colours.get(value) or colour_for_value(value)


def classes(region_map: RegionMap) -> list[tuple[int, tuple[str, ...]]]:
    """Distinct values with their labels, in order of the value's first appearance.

    Formats with one entry per value write one entry per class: labels that share a value
    are one class of the mask.
    """
    by_value: dict[int, list[str]] = {}
    for region in region_map:
        by_value.setdefault(region.value, []).append(region.label)
    return [(value, tuple(labels)) for value, labels in by_value.items()]


def json_entry(key: str) -> str:
    """How messages name a JSON entry: ``entry "liver"``."""
    return f"entry {json.dumps(key, ensure_ascii=False)}"


def finish(
    entries: Sequence[tuple[int, str, Any, Any]],
    format_problems: Sequence[MapProblem],
    *,
    source: str,
) -> RegionMap:
    """Validate imported ``(line, text, label, value)`` entries with the map's own rules.

    Raises:
        RegionMapError: the file's format problems and rule problems together, by line.
    """
    problems = list(format_problems)
    if entries or not problems:
        problems += entry_problems(entries, empty_message=NO_REGIONS)
    if problems:
        # JSON entries have no line (0); their text names the entry and leads the message.
        problems = [
            MapProblem(0, "", f"{p.text}: {p.message}") if p.line == 0 and p.text else p
            for p in problems
        ]
        problems.sort(key=lambda p: p.line)
        raise RegionMapError(problems, source=source)
    return RegionMap(tuple(Region(label, value, line) for line, _, label, value in entries))
