"""3D Slicer colour tables (``.ctbl`` / ``.txt``): ``value name R G B A`` per line.

As Slicer documents, a name cannot contain spaces: export writes each whitespace
character of a label as ``_``, and labels sharing a value as one name ``A+B``. Whenever
that changes a label, the exact map is recorded in ``# segmap region:`` comment lines
(Slicer skips ``#`` lines), and import restores it; a table without them is imported as
written, underscores included (``connective_tissue`` stays ``connective_tissue``).

Colours: export uses the colours given (from a map's ``# segmap colour:`` comments) and
the palette for the rest; import returns every row's colour. Value 0 is background:
export writes ``0 Background 0 0 0 0`` and import skips value 0. Import accepts rows of 2
fields (no colour), 5 (opaque) or 6.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from segmap.labelmap.formats.base import Imported, LabelFormat, classes, colour_of, finish
from segmap.labelmap.formats.record import (
    check_record,
    comment_record_lines,
    map_from_comment_record,
)
from segmap.labelmap.model import RegionMap
from segmap.labelmap.palette import RGBA
from segmap.labelmap.problems import MapProblem
from segmap.labelmap.rules import is_zero, parse_value, small_number

TITLE = "3D Slicer colour table"
_WHITESPACE = re.compile(r"\s")
_SHAPE = "a colour table row is: value name R G B A, e.g. 1 liver 221 130 101 255"


def slicer_name(labels: tuple[str, ...]) -> str:
    """The one space-free name Slicer gets for the labels of one value."""
    return "+".join(_WHITESPACE.sub("_", label) for label in labels)


def rows(region_map: RegionMap) -> list[tuple[int, str]]:
    """``(value, Slicer name)`` per distinct value, in map order."""
    return [(value, slicer_name(labels)) for value, labels in classes(region_map)]


def dump(region_map: RegionMap, colours: Mapping[int, RGBA]) -> str:
    """A colour table with a row per distinct value, in map order."""
    table = rows(region_map)
    lossless = [name for _, name in table] == list(region_map.labels)
    lines = ["# Color table file written by segmap", f"# {len(table) + 1} values"]
    if not lossless:
        lines.append("# The region map as written (names here cannot hold spaces):")
        lines += comment_record_lines(region_map)
    lines.append("0 Background 0 0 0 0")
    for value, name in table:
        r, g, b, a = colour_of(value, colours)
        lines.append(f"{value} {name} {r} {g} {b} {a}")
    return "\n".join(lines) + "\n"


def load(text: str, source: str) -> Imported:
    """Read a colour table: regions in row order, colours by value."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    entries: list[tuple[int, str, Any, Any]] = []
    problems: list[MapProblem] = []
    colours: dict[int, RGBA] = {}
    for number, raw in enumerate(lines, start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) not in (2, 5, 6):
            problems.append(MapProblem(number, raw, f"{len(fields)} fields; {_SHAPE}"))
            continue
        value, message = parse_value(fields[0])
        if is_zero(fields[0]):
            continue  # background
        if message:
            problems.append(MapProblem(number, raw, message))
            continue
        colour, message = _colour(fields[2:])
        if message:
            problems.append(MapProblem(number, raw, message))
            continue
        entries.append((number, raw, fields[1], value))
        if colour is not None and value is not None:
            colours[value] = colour
    recorded = map_from_comment_record(lines, source=source)
    if recorded is None or problems:
        return Imported(finish(entries, problems, source=source), colours)
    in_file = [(value, label) for _, _, label, value in entries]
    restored = check_record(
        recorded, in_file, rows, source=source, where='the "# segmap region:" lines'
    )
    return Imported(restored, colours)


def _colour(fields: list[str]) -> tuple[RGBA | None, str | None]:
    if not fields:
        return None, None
    if any(small_number(f, 255) is None for f in fields):
        return None, "colour components must be whole numbers from 0 to 255"
    r, g, b, *rest = (int(f) for f in fields)
    return (r, g, b, rest[0] if rest else 255), None


FORMAT = LabelFormat("slicer", TITLE, "region-colors.ctbl", True, dump, load)
