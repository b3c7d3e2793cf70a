"""A frozen dataset kept in a folder: its manifest, its QA, and its own links to the files.

::

    STORE/manifest.json          the manifest (see :mod:`.manifest`)
    STORE/qa.json                the QA report (see :mod:`.qa.report`)
    STORE/qa/label_NNN.png       one QA picture per region
    STORE/files/ab/abcd....nii.gz  every image and mask, named by its SHA-256

The files are hard links to the conversions' outputs where the file system allows
(copies otherwise). segmap never rewrites an output in place -- a new conversion of the
same case renames a new file over the old name -- so the store keeps the frozen bytes
after new annotations arrive, and the dataset can be exported again, byte for byte.

A folder holding only ``manifest.json`` and ``qa.json`` (the ``segmap/`` folder of an
export) is a frozen dataset too: its files are then read from where they were frozen,
and exporting fails, saying so, once one of them has changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from segmap.datasets.entries import Entry, Resolver, bytes_entry
from segmap.datasets.errors import DatasetError
from segmap.datasets.folder import FolderResult, write_folder
from segmap.datasets.freeze import FrozenDataset
from segmap.datasets.manifest import FileRecord, Manifest
from segmap.datasets.qa.plots import render_region_plot
from segmap.datasets.qa.report import DatasetQA

MANIFEST_NAME = "manifest.json"
QA_NAME = "qa.json"
FILES_DIR = "files"


def source_resolver(record: FileRecord) -> Path:
    """Read a file from where it was frozen."""
    return Path(record.source)


def stored_path(record: FileRecord) -> str:
    """A file's path inside a store, by its checksum."""
    return f"{FILES_DIR}/{record.sha256[:2]}/{record.sha256}.nii.gz"


def store_entries(frozen: FrozenDataset, resolve: Resolver = source_resolver) -> list[Entry]:
    """Every entry of a store of ``frozen`` (each distinct file once)."""
    entries = [
        bytes_entry(MANIFEST_NAME, frozen.manifest.to_json().encode(), compress=True),
        bytes_entry(QA_NAME, frozen.qa.to_json().encode(), compress=True),
    ]
    for region in frozen.qa.regions:
        entries.append(bytes_entry(region.plot, render_region_plot(region), compress=False))
    seen: set[str] = set()
    for case in frozen.manifest.cases:
        for record in (case.image, case.mask):
            if record.sha256 not in seen:
                seen.add(record.sha256)
                entries.append(
                    Entry(
                        stored_path(record),
                        source=resolve(record),
                        sha256=record.sha256,
                        size_hint=record.bytes,
                    )
                )
    return entries


def save_store(
    frozen: FrozenDataset,
    path: str | Path,
    *,
    force: bool = False,
    resolve: Resolver = source_resolver,
) -> FolderResult:
    """Keep ``frozen`` in the folder ``path`` (whole or not at all).

    Raises:
        DatasetError: ``path`` exists (without ``force``) or a file changed since freezing.
    """
    path = Path(path).absolute()
    return write_folder(store_entries(frozen, resolve), path.name, path.parent, force=force)


def is_frozen_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a frozen dataset (a manifest and a QA report)."""
    path = Path(path)
    return (path / MANIFEST_NAME).is_file() and (path / QA_NAME).is_file()


def open_frozen(path: str | Path) -> tuple[FrozenDataset, Resolver]:
    """The frozen dataset in ``path`` and where to read its files from.

    Raises:
        DatasetError: ``path`` holds no frozen dataset, or its files are not readable.
    """
    path = Path(path).absolute()
    if not is_frozen_folder(path):
        raise DatasetError(
            f"{path}: no {MANIFEST_NAME} and {QA_NAME} here; give a folder "
            "made by 'segmap dataset freeze' (or the segmap/ folder of an "
            "export)"
        )
    manifest = Manifest.read(path / MANIFEST_NAME)
    try:
        qa = DatasetQA.from_dict(json.loads((path / QA_NAME).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path / QA_NAME}: not a QA report segmap wrote ({exc})") from None
    if (path / FILES_DIR).is_dir():

        def resolve(record: FileRecord) -> Path:
            return path / stored_path(record)

        return FrozenDataset(manifest, qa), resolve
    return FrozenDataset(manifest, qa), source_resolver
