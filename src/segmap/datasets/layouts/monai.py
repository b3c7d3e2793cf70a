"""MONAI: ``Name/`` with ``imagesTr``, ``labelsTr``, ``datalist.json`` and ``labels.json``.

``datalist.json`` is what ``monai.data.load_decathlon_datalist`` reads: ``training`` lists
every case (``image``, ``label``, paths relative to the file) with its ``fold`` (grouped
by subject), the way MONAI's Auto3DSeg datalists do; ``validation`` repeats the cases of
fold 0, for a single train/validation run. ``labels.json`` is the label dictionary as
MONAI bundles and MONAI Label write it (``{"Liver": 2, ...}``, label values, no
background), which ``segmap map import --from monai`` also reads. ``datalist.json``
carries the renumbering from the region map's values under ``segmap_dataset``.
"""

from __future__ import annotations

import json

from segmap.datasets.entries import Resolver, json_entry
from segmap.datasets.layouts.common import (
    Layout,
    class_map,
    dataset_record,
    image_entry,
    label_entry,
    segmap_entries,
)
from segmap.datasets.manifest import CaseRecord, Manifest
from segmap.datasets.qa.report import DatasetQA
from segmap.labelmap.formats import monai as monai_labels

NAME = "monai"
DATALIST = "datalist.json"
LABELS = "labels.json"
VALIDATION_FOLD = 0


def root_name(manifest: Manifest) -> str:
    """The dataset's name."""
    return manifest.name


def _item(case: CaseRecord) -> dict[str, object]:
    return {
        "image": f"imagesTr/{case.name}.nii.gz",
        "label": f"labelsTr/{case.name}.nii.gz",
        "fold": case.fold,
    }


def datalist(manifest: Manifest) -> dict[str, object]:
    """The datalist MONAI loads."""
    return {
        "name": manifest.name,
        "modality": manifest.modality,
        "labels": json.loads(monai_labels.dump(class_map(manifest.labels), {})),
        "training": [_item(c) for c in manifest.cases],
        "validation": [_item(c) for c in manifest.cases_in_fold(VALIDATION_FOLD)],
        "segmap_dataset": dataset_record(manifest, NAME),
    }


def layout(manifest: Manifest, qa: DatasetQA, resolve: Resolver) -> Layout:
    """Every entry of the MONAI dataset."""
    table = manifest.labels
    entries = [
        json_entry(DATALIST, datalist(manifest)),
        json_entry(LABELS, json.loads(monai_labels.dump(class_map(table), {}))),
    ]
    for case in manifest.cases:
        entries.append(image_entry(f"imagesTr/{case.name}.nii.gz", case, resolve))
        entries.append(label_entry(f"labelsTr/{case.name}.nii.gz", case, table, resolve))
    entries.extend(segmap_entries(manifest, qa))
    return Layout(NAME, root_name(manifest), tuple(entries))
