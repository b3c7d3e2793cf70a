"""The segments of a derived DICOM SEG: one per region value of the map, in map order.

A region map may give several labels the same value; they are one class of the mask, so
they are one segment of the SEG. Its SegmentLabel is the **first** of those labels in map
order, and its SegmentDescription lists every label (``Kidney L + Kidney R``). The first
label, rather than the joined names, is the label because a SEG is read back by matching
SegmentLabel to the map: the first label matches its region and so paints the value the
segment was made from, while a joined name would match no map line at all.

Colours come from the map's ``# segmap colour:`` comments where it has them, else from
the palette every segmap export uses (:mod:`segmap.labelmap.palette`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from segmap.errors import SegmapError
from segmap.labelmap import RegionMap
from segmap.labelmap.formats.base import classes, colour_of
from segmap.labelmap.palette import RGBA

LO_MAX_CHARS = 64
"""DICOM's longest LO value (SegmentLabel is LO), in characters."""


class DerivedSegError(SegmapError):
    """The composite mask or the region map cannot be written as a DICOM SEG."""


@dataclass(frozen=True)
class SegSegment:
    """One segment of a derived SEG.

    Attributes:
        number: SegmentNumber in the file (1, 2, ... in map order for BINARY; the mask
            value itself for LABELMAP, whose pixels are segment numbers).
        value: the mask value the segment holds.
        labels: every map label with this value, in map order.
        colour_rgb: display colour, sRGB 0..255 (written as CIELab).
    """

    number: int
    value: int
    labels: tuple[str, ...]
    colour_rgb: tuple[int, int, int]

    @property
    def label(self) -> str:
        """SegmentLabel: the first map label with this value."""
        return self.labels[0]

    @property
    def description(self) -> str:
        """SegmentDescription: every label of the value and the value itself."""
        return f"{' + '.join(self.labels)} (mask value {self.value})"


def segment_table(
    rmap: RegionMap, colours: Mapping[int, RGBA] | None = None, *, number_is_value: bool = False
) -> tuple[SegSegment, ...]:
    """The segments for ``rmap``: one per distinct value, in order of first appearance.

    Args:
        rmap: the region map.
        colours: colours by value (e.g. from the map's colour comments); values without
            one take the palette colour.
        number_is_value: number each segment by its value (LABELMAP) instead of 1..N.

    Raises:
        DerivedSegError: a label that becomes a SegmentLabel is longer than 64 characters
            or holds a backslash (DICOM's value separator); every such label is named.
    """
    colours = colours or {}
    problems = []
    segments = []
    for n, (value, labels) in enumerate(classes(rmap), start=1):
        first = labels[0]
        line = next((r.line for r in rmap.regions if r.label == first), 0)
        where = f"map line {line}" if line else "the region map"
        if len(first) > LO_MAX_CHARS:
            problems.append(
                f"{where}: the label {first!r} has {len(first)} characters; a SEG "
                f"segment label holds at most {LO_MAX_CHARS}"
            )
        if "\\" in first:
            problems.append(
                f"{where}: the label {first!r} holds a backslash, which DICOM "
                "reads as a value separator in a segment label"
            )
        r, g, b, _alpha = colour_of(value, colours)
        segments.append(SegSegment(value if number_is_value else n, value, labels, (r, g, b)))
    if problems:
        raise DerivedSegError(
            "cannot write the DICOM SEG: "
            + "; ".join(problems)
            + ". Shorten or rename the label in the region map, or convert without the SEG"
        )
    return tuple(segments)
