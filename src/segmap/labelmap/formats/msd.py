"""Medical Segmentation Decathlon ``dataset.json`` labels: ``{"0": "background", "1": "liver"}``.

Keys are values written as text, so each value has one name: labels that share a value
are written as one name ``"A + B"`` and, only then, the exact map is recorded under
``"segmap"`` for import to restore. Export writes ``labels`` in map order (after
``"0": "background"``) plus the record when needed; the other dataset.json fields describe
images and are added when the dataset is assembled. Import reads ``labels`` from any MSD
dataset.json; key ``"0"`` is background and skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmap.labelmap.formats.base import Imported, LabelFormat, classes, finish, json_entry
from segmap.labelmap.formats.jsonfile import dump_json, labels_object, load_json
from segmap.labelmap.formats.record import (
    RECORD_KEY,
    check_record,
    json_record,
    map_from_json_record,
)
from segmap.labelmap.model import RegionMap
from segmap.labelmap.palette import RGBA
from segmap.labelmap.problems import MapProblem
from segmap.labelmap.rules import is_zero, parse_value

TITLE = "Medical Segmentation Decathlon dataset.json"
_EXAMPLE = '"labels": {"0": "background", "1": "liver"}'


def rows(region_map: RegionMap) -> list[tuple[int, str]]:
    """``(value, name)`` per distinct value, in map order."""
    return [(value, " + ".join(labels)) for value, labels in classes(region_map)]


def dump(region_map: RegionMap, colours: Mapping[int, RGBA]) -> str:
    """The labels part of an MSD dataset.json (record added only for shared values)."""
    data: dict[str, Any] = {
        "labels": {"0": "background", **{str(value): name for value, name in rows(region_map)}}
    }
    if region_map.shared_values():
        data[RECORD_KEY] = json_record(region_map)
    return dump_json(data)


def load(text: str, source: str) -> Imported:
    """Read the labels of an MSD dataset.json."""
    data = load_json(text, source=source, title=TITLE)
    labels = labels_object(data, source=source, title=TITLE, example=_EXAMPLE)
    entries: list[tuple[int, str, Any, Any]] = []
    problems: list[MapProblem] = []
    for key, name in labels.items():
        if is_zero(key.strip()):
            continue  # background
        text_of = json_entry(key)
        value, message = parse_value(key.strip())
        if message:
            problems.append(MapProblem(0, text_of, f"the key is the value, and {message}"))
            continue
        label = name.strip() if isinstance(name, str) else name
        entries.append((0, text_of, label, value))
    if RECORD_KEY not in data or problems:
        return Imported(finish(entries, problems, source=source))
    recorded = map_from_json_record(data[RECORD_KEY], source=source)
    in_file = [(value, label) for _, _, label, value in entries]
    return Imported(
        check_record(recorded, in_file, rows, source=source, where=f'the "{RECORD_KEY}" entry')
    )


FORMAT = LabelFormat("msd", TITLE, "dataset.json", False, dump, load)
