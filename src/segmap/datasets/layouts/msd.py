"""Medical Segmentation Decathlon: ``TaskNN_Name/`` with ``imagesTr``, ``labelsTr``, an
empty ``imagesTs`` and ``dataset.json``.

``dataset.json`` has the Decathlon's fields: ``name``, ``description``, ``reference``,
``licence``, ``release``, ``tensorImageSize`` (``3D``), ``modality`` (``{"0": "CT"}``),
``labels`` (``{"0": "background", "1": ...}``, label values), ``numTraining``,
``numTest`` (0), ``training`` (``./imagesTr/...``, ``./labelsTr/...``) and ``test``
(empty). The Decathlon has no folds: they, and the renumbering from the region map's
values, are under ``segmap_dataset``. MONAI's ``load_decathlon_datalist`` reads it.
"""

from __future__ import annotations

import json

from segmap.datasets.entries import Resolver, dir_entry, json_entry
from segmap.datasets.layouts.common import (
    Layout,
    class_map,
    dataset_record,
    image_entry,
    label_entry,
    segmap_entries,
)
from segmap.datasets.manifest import Manifest
from segmap.datasets.qa.report import DatasetQA
from segmap.labelmap.formats import msd as msd_labels

NAME = "msd"


def root_name(manifest: Manifest) -> str:
    """``TaskNN_Name``."""
    return f"Task{manifest.dataset_id:02d}_{manifest.name}"


def dataset_json(manifest: Manifest) -> dict[str, object]:
    """The Decathlon ``dataset.json``."""
    labels = json.loads(msd_labels.dump(class_map(manifest.labels), {}))["labels"]
    record = dataset_record(manifest, NAME)
    record["folds_by_case"] = {c.name: c.fold for c in manifest.cases}
    return {
        "name": manifest.name,
        "description": f"{len(manifest.cases)} case(s) frozen by segmap "
        f"{manifest.segmap_version} on {manifest.created_utc}",
        "reference": "",
        "licence": "",
        "release": manifest.created_utc,
        "tensorImageSize": "3D",
        "modality": {"0": manifest.modality},
        "labels": labels,
        "numTraining": len(manifest.cases),
        "numTest": 0,
        "training": [
            {"image": f"./imagesTr/{c.name}.nii.gz", "label": f"./labelsTr/{c.name}.nii.gz"}
            for c in manifest.cases
        ],
        "test": [],
        "segmap_dataset": record,
    }


def layout(manifest: Manifest, qa: DatasetQA, resolve: Resolver) -> Layout:
    """Every entry of the Decathlon task folder."""
    table = manifest.labels
    entries = [json_entry("dataset.json", dataset_json(manifest)), dir_entry("imagesTs")]
    for case in manifest.cases:
        entries.append(image_entry(f"imagesTr/{case.name}.nii.gz", case, resolve))
        entries.append(label_entry(f"labelsTr/{case.name}.nii.gz", case, table, resolve))
    entries.extend(segmap_entries(manifest, qa))
    return Layout(NAME, root_name(manifest), tuple(entries))
