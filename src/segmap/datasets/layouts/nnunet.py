"""nnU-Net v2 raw dataset: ``DatasetNNN_Name/`` with ``imagesTr``, ``labelsTr``,
``dataset.json`` and ``splits_final.json``.

``imagesTr/{case}_0000.nii.gz`` is the case's image (channel 0), ``labelsTr/{case}.nii.gz``
its labels 0, 1, 2, ... ``dataset.json`` holds ``channel_names`` (the scan's modality;
nnU-Net normalises ``CT`` by its intensity statistics and anything else by z-score),
``labels`` (background 0, then the classes), ``numTraining`` and ``file_ending``, and --
under ``segmap`` -- the region map and its renumbering, exactly as ``segmap map export
--to nnunet`` writes them (so ``segmap map import --from nnunet`` gives the map back).
``splits_final.json`` is the folds grouped by subject, in nnU-Net's own format (a list of
``{"train": [...], "val": [...]}``); nnU-Net reads it from
``nnUNet_preprocessed/DatasetNNN_Name/`` once copied there.
"""

from __future__ import annotations

import json

from segmap.datasets.entries import Resolver, json_entry
from segmap.datasets.layouts.common import (
    Layout,
    dataset_record,
    folds_json_entry,
    image_entry,
    label_entry,
    segmap_entries,
)
from segmap.datasets.manifest import Manifest
from segmap.datasets.qa.report import DatasetQA
from segmap.labelmap.formats import nnunet as nnunet_labels

NAME = "nnunet"
FILE_ENDING = ".nii.gz"


def root_name(manifest: Manifest) -> str:
    """``DatasetNNN_Name``."""
    return f"Dataset{manifest.dataset_id:03d}_{manifest.name}"


def dataset_json(manifest: Manifest) -> dict[str, object]:
    """The ``dataset.json`` nnU-Net v2 reads."""
    labels = json.loads(nnunet_labels.dump(manifest.region_map, {}))
    return {
        "name": manifest.name,
        "description": f"{len(manifest.cases)} case(s) frozen by segmap "
        f"{manifest.segmap_version} on {manifest.created_utc}",
        "channel_names": {"0": manifest.modality},
        "labels": labels["labels"],
        "numTraining": len(manifest.cases),
        "file_ending": FILE_ENDING,
        "segmap": labels["segmap"],
        "segmap_dataset": dataset_record(manifest, NAME),
    }


def layout(manifest: Manifest, qa: DatasetQA, resolve: Resolver) -> Layout:
    """Every entry of the nnU-Net v2 raw dataset."""
    table = manifest.labels
    entries = [
        json_entry("dataset.json", dataset_json(manifest)),
        folds_json_entry("splits_final.json", manifest, key=lambda c: c.name),
    ]
    for case in manifest.cases:
        entries.append(image_entry(f"imagesTr/{case.name}_0000{FILE_ENDING}", case, resolve))
        entries.append(label_entry(f"labelsTr/{case.name}{FILE_ENDING}", case, table, resolve))
    entries.extend(segmap_entries(manifest, qa))
    return Layout(NAME, root_name(manifest), tuple(entries))
