"""The segmap record: the exact region map, embedded in an exported file.

Some formats cannot say everything a region map says: nnU-Net renumbers values, 3D Slicer
names cannot hold spaces, one value can have only one name. Where an export loses
something, it embeds the region map itself (a ``"segmap"`` entry in JSON, ``# segmap
region:`` comment lines in text tables, both ignored by the tools that read those files),
and import restores the map from it.

A record is trusted only while the table still says what exporting the recorded map
would say: if someone edited the table after export, the record is stale, and import
refuses rather than guess which of the two is right.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from segmap.labelmap.formats.base import LabelFormatError
from segmap.labelmap.model import RegionMap
from segmap.labelmap.parse import parse_region_map
from segmap.labelmap.problems import RegionMapError

RECORD_KEY = "segmap"
_ABOUT = (
    "Written by segmap. 'region_map' is the region map this file was exported from, in "
    "its own order; 'segmap map import' restores it from here."
)
_COMMENT = re.compile(r"\s*#\s*segmap region:\s?(.*)")


def json_record(region_map: RegionMap, **extra: Any) -> dict[str, Any]:
    """The ``"segmap"`` entry of an exported JSON file."""
    return {
        "about": _ABOUT,
        "region_map": [{"label": r.label, "value": r.value} for r in region_map],
        **extra,
        "sha256": region_map.sha256,
    }


def map_from_json_record(record: Any, *, source: str) -> RegionMap:
    """The region map held by a ``"segmap"`` JSON entry.

    Raises:
        LabelFormatError: the entry is not a record segmap wrote, or breaks the map rules.
    """
    regions = record.get("region_map") if isinstance(record, dict) else None
    if not isinstance(regions, list) or not all(
        isinstance(r, dict) and set(r) == {"label", "value"} for r in regions
    ):
        raise LabelFormatError(
            f'{source}: the "{RECORD_KEY}" entry is not a region map record written by segmap; '
            "remove it to import the labels as they stand",
            source,
        )
    try:
        return RegionMap.from_pairs((r["label"], r["value"]) for r in regions)
    except RegionMapError as exc:
        raise _broken(source, f'the "{RECORD_KEY}" entry', exc) from None


def comment_record_lines(region_map: RegionMap) -> list[str]:
    """``# segmap region: Label=Value`` lines (no line ends), in map order."""
    # split("\n"), not splitlines(): a label may hold U+2028 and other line separators.
    return [f"# segmap region: {line}" for line in region_map.to_text().split("\n")[:-1]]


def map_from_comment_record(lines: Sequence[str], *, source: str) -> RegionMap | None:
    """The region map held by ``# segmap region:`` comment lines, or None if there are none.

    Raises:
        LabelFormatError: the record lines break the map rules.
    """
    found = [m.group(1) for line in lines if (m := _COMMENT.fullmatch(line))]
    if not found:
        return None
    try:
        return parse_region_map("\n".join(found), source=source)
    except RegionMapError as exc:
        raise _broken(source, 'the "# segmap region:" lines', exc) from None


def check_record(
    recorded: RegionMap,
    rows_in_file: Sequence[tuple[int, str]],
    rows_of: Callable[[RegionMap], Sequence[tuple[int, str]]],
    *,
    source: str,
    where: str,
) -> RegionMap:
    """``recorded`` if exporting it gives the ``(value, name)`` rows the file holds.

    Raises:
        LabelFormatError: the table was edited after export, so the record is stale.
    """
    if sorted(rows_of(recorded)) == sorted(rows_in_file):
        return recorded
    raise LabelFormatError(
        f"{source}: the labels were changed after segmap exported them, so {where} (the "
        "original region map) no longer matches them; delete that record to import the "
        "labels as they stand, or export the map again",
        source,
    )


def _broken(source: str, where: str, exc: RegionMapError) -> LabelFormatError:
    first = exc.problems[0] if exc.problems else None
    detail = f": {first.detail}" if first else ""
    return LabelFormatError(
        f"{source}: {where} does not hold a valid region map{detail}; remove it to import "
        "the labels as they stand",
        source,
    )
