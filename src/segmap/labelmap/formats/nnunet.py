"""nnU-Net v2 ``dataset.json`` labels: ``{"background": 0, "liver": 1, ...}``.

nnU-Net needs the values 0, 1, 2, ... without gaps, so export renumbers: the map's distinct
values, in increasing order, become 1, 2, 3... Labels that share a value become one class
named ``"A + B"``. The renumbering and the exact map are recorded under ``"segmap"``
(nnU-Net ignores keys it does not know) so import gives back the original values.

Export writes ``labels``, ``file_ending`` (``.nii.gz``, what segmap writes) and the record;
``channel_names`` and ``numTraining`` describe the images and are added when the dataset is
assembled. Import reads ``labels`` from any nnU-Net v2 dataset.json; region-based labels
(lists of values, ``regions_class_order``) have no single value per region and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmap.labelmap.formats.base import (
    Imported,
    LabelFormat,
    LabelFormatError,
    classes,
    finish,
    json_entry,
)
from segmap.labelmap.formats.jsonfile import dump_json, labels_object, load_json
from segmap.labelmap.formats.record import (
    RECORD_KEY,
    check_record,
    json_record,
    map_from_json_record,
)
from segmap.labelmap.model import RegionMap
from segmap.labelmap.palette import RGBA

TITLE = "nnU-Net v2 dataset.json"
_EXAMPLE = '"labels": {"background": 0, "liver": 1}'


def renumbering(region_map: RegionMap) -> dict[int, int]:
    """Map value -> consecutive nnU-Net value (1, 2, ...), by increasing map value."""
    return {value: i for i, value in enumerate(sorted(set(region_map.values)), start=1)}


def rows(region_map: RegionMap) -> list[tuple[int, str]]:
    """``(nnU-Net value, class name)`` per class, by nnU-Net value.

    Class names are JSON keys, so they must differ from each other and from
    ``background``: a name that would clash gets its map value appended.
    """
    new = renumbering(region_map)
    used = {"background"}
    out = []
    for value, labels in sorted(classes(region_map)):
        name = " + ".join(labels)
        while name in used:
            name = f"{name} (map value {value})"
        used.add(name)
        out.append((new[value], name))
    return out


def dump(region_map: RegionMap, colours: Mapping[int, RGBA]) -> str:
    """The labels part of a dataset.json, with the renumbering recorded."""
    table = rows(region_map)
    new = renumbering(region_map)
    data: dict[str, Any] = {
        "labels": {"background": 0, **{name: value for value, name in table}},
        "file_ending": ".nii.gz",
        RECORD_KEY: json_record(
            region_map, map_value_to_nnunet_value={str(k): v for k, v in new.items()}
        ),
    }
    return dump_json(data)


def load(text: str, source: str) -> Imported:
    """Read the labels of an nnU-Net v2 dataset.json (undoing segmap's renumbering)."""
    data = load_json(text, source=source, title=TITLE)
    labels = labels_object(data, source=source, title=TITLE, example=_EXAMPLE)
    region_based = [name for name, value in labels.items() if isinstance(value, list)]
    if region_based or "regions_class_order" in data:
        names = ", ".join(f'"{n}"' for n in region_based) or "its labels"
        raise LabelFormatError(
            f"{source}: this dataset uses nnU-Net region-based labels ({names} list several "
            "values); a region map gives each region exactly one value, so it cannot be "
            "imported",
            source,
        )
    entries = [
        (0, json_entry(name), name.strip(), value)
        for name, value in labels.items()
        if not (isinstance(value, int) and not isinstance(value, bool) and value == 0)
    ]
    if RECORD_KEY not in data:
        return Imported(finish(entries, [], source=source))
    recorded = map_from_json_record(data[RECORD_KEY], source=source)
    in_file = [(value, name) for name, value in labels.items() if value != 0]
    return Imported(
        check_record(recorded, in_file, rows, source=source, where=f'the "{RECORD_KEY}" entry')
    )


FORMAT = LabelFormat("nnunet", TITLE, "dataset.json", False, dump, load)
