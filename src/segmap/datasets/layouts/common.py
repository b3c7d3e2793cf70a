"""What every layout shares: the image and label entries of a case, the record of the
renumbering, and segmap's own files (manifest, QA report, QA pictures).

Every layout writes, beside the framework's own files, a ``segmap/`` folder holding the
frozen manifest (``manifest.json``, where each case came from), the QA report
(``qa.json``) and one picture per region (``qa/label_NNN.png``). Training frameworks
ignore it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from segmap.datasets.entries import (
    Entry,
    Resolver,
    bytes_entry,
    check_sources,
    file_entry,
    json_entry,
)
from segmap.datasets.labels import LabelTable, write_label_image
from segmap.datasets.manifest import CaseRecord, Manifest
from segmap.datasets.qa.plots import render_region_plot
from segmap.datasets.qa.report import DatasetQA
from segmap.labelmap import RegionMap

SEGMAP_DIR = "segmap"
MANIFEST_PATH = f"{SEGMAP_DIR}/manifest.json"
QA_PATH = f"{SEGMAP_DIR}/qa.json"
NIFTI_HEADER_BYTES = 352


@dataclass(frozen=True)
class Layout:
    """An export: the dataset folder's name and its entries, in writing order."""

    format: str
    root: str
    entries: tuple[Entry, ...]


def image_entry(path: str, case: CaseRecord, resolve: Resolver) -> Entry:
    """The case's image, as it is."""
    return file_entry(path, case.image, resolve)


def label_entry(path: str, case: CaseRecord, table: LabelTable, resolve: Resolver) -> Entry:
    """The case's mask with label values: as it is when the map is already 1..n, else
    rewritten through the renumbering (see :mod:`segmap.datasets.labels`)."""
    if table.is_identity:
        return file_entry(path, case.mask, resolve)
    source = resolve(case.mask)
    voxels = case.size_ijk[0] * case.size_ijk[1] * case.size_ijk[2]
    raw = NIFTI_HEADER_BYTES + voxels * table.dtype.itemsize
    # Deflate never grows data by more than 5 bytes per 16 KiB block, plus gzip's framing.
    hint = raw + raw // 16384 * 5 + 1024

    def write(out: IO[bytes]) -> None:
        check_sources([Entry(path, source=source, sha256=case.mask.sha256)])
        write_label_image(source, table, out)

    return Entry(path, write=write, size_hint=hint)


def class_map(table: LabelTable) -> RegionMap:
    """The dataset's classes as a region map of label values (names as nnU-Net has them)."""
    return RegionMap.from_pairs((c.name, c.value) for c in table.classes)


def dataset_record(manifest: Manifest, fmt: str) -> dict[str, Any]:
    """The ``segmap_dataset`` entry of a layout's JSON: what made it and how to map back."""
    return {
        "about": "Written by segmap. 'labels' maps each region map value to the label value "
        f"used in this dataset; '{MANIFEST_PATH}' says where every case came from.",
        "format": fmt,
        "name": manifest.name,
        "dataset_id": manifest.dataset_id,
        "cases": len(manifest.cases),
        "folds": manifest.folds,
        "fold_seed": manifest.seed,
        "resampled": manifest.resampled,
        "spacing_mm": list(manifest.spacing_mm) if manifest.spacing_mm else None,
        "manifest": MANIFEST_PATH,
        "labels": manifest.labels.record(),
    }


def _png_writer(render: Callable[[], bytes]) -> Callable[[IO[bytes]], None]:
    def write(out: IO[bytes]) -> None:
        out.write(render())

    return write


def segmap_entries(manifest: Manifest, qa: DatasetQA) -> list[Entry]:
    """``segmap/manifest.json``, ``segmap/qa.json`` and the QA pictures."""
    entries = [
        bytes_entry(MANIFEST_PATH, manifest.to_json().encode("utf-8"), compress=True),
        bytes_entry(QA_PATH, qa.to_json().encode("utf-8"), compress=True),
    ]
    for region in qa.regions:
        entries.append(
            Entry(
                f"{SEGMAP_DIR}/{region.plot}",
                write=_png_writer(functools.partial(render_region_plot, region)),
                size_hint=1 << 20,
            )
        )
    return entries


def folds_json_entry(path: str, manifest: Manifest, *, key: Callable[[CaseRecord], Any]) -> Entry:
    """nnU-Net's ``splits_final.json``-style list: per fold, its ``train`` and ``val``."""
    splits = [
        {
            "train": [key(c) for c in manifest.cases if c.fold != f],
            "val": [key(c) for c in manifest.cases if c.fold == f],
        }
        for f in range(manifest.folds)
    ]
    return json_entry(path, splits)
