"""Colours kept in a region map file as comments.

``region2MaskValueMap.txt`` has no place for colours, so a map imported from a format that
has them (3D Slicer, ITK-SNAP) keeps them in comment lines, one per value::

    # segmap colour: 31 221 130 101 255

(value, then red, green, blue, alpha, each 0..255). The parser ignores comments, so such a
file is an ordinary region map; exports read these lines back and fall back to the palette
for values without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from segmap.labelmap.palette import RGBA

_COLOUR_LINE = re.compile(
    r"\s*#\s*segmap colou?r:\s*([0-9]+)\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)\s*"
)


def read_colour_comments(text: str) -> dict[int, RGBA]:
    """Colours by value from ``# segmap colour:`` lines; malformed ones are ignored
    (they are comments: the map stays valid whatever they say)."""
    colours: dict[int, RGBA] = {}
    for line in text.replace("\r", "\n").split("\n"):
        found = _COLOUR_LINE.fullmatch(line)
        if not found:
            continue
        value, r, g, b, a = (int(x) for x in found.groups())
        if all(0 <= c <= 255 for c in (r, g, b, a)):
            colours[value] = (r, g, b, a)
    return colours


def colour_comment_lines(colours: Mapping[int, RGBA], values: list[int]) -> list[str]:
    """``# segmap colour:`` lines (without line ends) for ``values`` that have a colour."""
    out = []
    for value in dict.fromkeys(values):
        if value in colours:
            r, g, b, a = colours[value]
            out.append(f"# segmap colour: {value} {r} {g} {b} {a}")
    return out
