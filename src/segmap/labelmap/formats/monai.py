"""MONAI Label / MONAI bundle label dictionaries: ``{"liver": 1, "spleen": 2}``.

Export writes the map as that object, in map order, without a background entry.
Import takes either such an object or a file holding one under ``"labels"`` (a MONAI
Label config or ``/info`` answer); entries with value 0 are background and skipped.
The format loses nothing: names are free text and several names may share a value.
"""

from __future__ import annotations

from collections.abc import Mapping

from segmap.labelmap.formats.base import (
    Imported,
    LabelFormat,
    LabelFormatError,
    finish,
    json_entry,
)
from segmap.labelmap.formats.jsonfile import dump_json, load_json
from segmap.labelmap.model import RegionMap
from segmap.labelmap.palette import RGBA

TITLE = "MONAI label dictionary"


def dump(region_map: RegionMap, colours: Mapping[int, RGBA]) -> str:
    """``{"Label": value, ...}`` in map order (colours are not part of the format)."""
    return dump_json({r.label: r.value for r in region_map})


def load(text: str, source: str) -> Imported:
    """Read a MONAI label dictionary (or an object with one under ``"labels"``)."""
    data = load_json(text, source=source, title=TITLE)
    if isinstance(data, dict) and "labels" in data:
        data = data["labels"]
    if isinstance(data, list):
        raise LabelFormatError(
            f"{source}: the labels are a list of names without values; segmap needs each "
            'name with its value, e.g. {"liver": 1, "spleen": 2}',
            source,
        )
    if not isinstance(data, dict):
        raise LabelFormatError(
            f'{source}: expected a JSON object of names and values, e.g. {{"liver": 1}}',
            source,
        )
    entries = [
        (0, json_entry(name), name.strip(), value)
        for name, value in data.items()
        if not (isinstance(value, int) and not isinstance(value, bool) and value == 0)
    ]
    return Imported(finish(entries, [], source=source))


FORMAT = LabelFormat("monai", TITLE, "labels.json", False, dump, load)
