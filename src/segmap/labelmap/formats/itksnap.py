"""ITK-SNAP label description files: ``IDX R G B A VIS MSH "LABEL"`` per line.

R, G, B are 0..255; A is opacity from 0 to 1 (segmap holds 0..255 and converts, three
decimals, which round-trips every 0..255 value exactly); VIS and MSH (visible, in 3D mesh)
are written as 1 and ignored on import. Labels are quoted and may hold spaces but not a
double quote: export writes ``"`` as ``'``, and labels sharing a value as one label
``A + B``; whenever that changes a label the exact map is recorded in ``# segmap region:``
comment lines, which ITK-SNAP skips, and import restores it. Index 0 ("Clear Label") is
background: written first on export, skipped on import.
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

TITLE = "ITK-SNAP label description file"
_ROW = re.compile(r'\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+"(.*)"\s*')
_SHAPE = 'a row is: IDX R G B A VIS MSH "LABEL", e.g. 1 255 0 0 1 1 1 "Liver"'
_HEADER = """\
################################################
# ITK-SnAP Label Description File
# Written by segmap. Columns:
#   IDX  label value
#   R G B  colour, 0..255 each
#   A  opacity, 0..1
#   VIS  shown (0 or 1)    MSH  shown in 3D mesh (0 or 1)
#   LABEL  name, in double quotes
################################################"""


def itksnap_name(labels: tuple[str, ...]) -> str:
    """The quoted-safe name ITK-SNAP gets for the labels of one value."""
    return " + ".join(labels).replace('"', "'")


def rows(region_map: RegionMap) -> list[tuple[int, str]]:
    """``(value, ITK-SNAP label)`` per distinct value, in map order."""
    return [(value, itksnap_name(labels)) for value, labels in classes(region_map)]


def _opacity(alpha: int) -> str:
    return f"{alpha / 255:.3f}".rstrip("0").rstrip(".") or "0"


def dump(region_map: RegionMap, colours: Mapping[int, RGBA]) -> str:
    """A label description file with a row per distinct value, in map order."""
    table = rows(region_map)
    lines = _HEADER.split("\n")
    if [name for _, name in table] != list(region_map.labels):
        lines.append("# The region map as written (a label here cannot hold a double quote):")
        lines += comment_record_lines(region_map)
    lines.append(f'{0:>5} {0:>5} {0:>4} {0:>4} {0:>8} {0:>2} {0:>2}    "Clear Label"')
    for value, name in table:
        r, g, b, a = colour_of(value, colours)
        lines.append(f'{value:>5} {r:>5} {g:>4} {b:>4} {_opacity(a):>8} {1:>2} {1:>2}    "{name}"')
    return "\n".join(lines) + "\n"


def load(text: str, source: str) -> Imported:
    """Read a label description file: regions in row order, colours by value."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    entries: list[tuple[int, str, Any, Any]] = []
    problems: list[MapProblem] = []
    colours: dict[int, RGBA] = {}
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        row = _ROW.fullmatch(raw)
        if not row:
            problems.append(MapProblem(number, raw, f"not a label row; {_SHAPE}"))
            continue
        idx, r, g, b, a, _vis, _msh, label = row.groups()
        if is_zero(idx):
            continue  # "Clear Label", the background
        value, message = parse_value(idx)
        colour, colour_message = _colour(r, g, b, a)
        if message or colour_message:
            problems.append(MapProblem(number, raw, message or colour_message or ""))
            continue
        entries.append((number, raw, label.strip(), value))
        if value is not None and colour is not None:
            colours[value] = colour
    recorded = map_from_comment_record(lines, source=source)
    if recorded is None or problems:
        return Imported(finish(entries, problems, source=source), colours)
    in_file = [(value, label) for _, _, label, value in entries]
    restored = check_record(
        recorded, in_file, rows, source=source, where='the "# segmap region:" lines'
    )
    return Imported(restored, colours)


def _colour(r: str, g: str, b: str, a: str) -> tuple[RGBA | None, str | None]:
    rgb = [small_number(c, 255) for c in (r, g, b)]
    if any(c is None for c in rgb):
        return None, "R, G and B must be whole numbers from 0 to 255"
    try:
        opacity = float(a)
    except ValueError:
        opacity = -1.0
    if not 0.0 <= opacity <= 1.0:
        return None, f'the opacity "{a}" must be a number from 0 to 1'
    return (int(r), int(g), int(b), round(opacity * 255)), None  # each checked: 0..255


FORMAT = LabelFormat("itksnap", TITLE, "itksnap-labels.txt", True, dump, load)
