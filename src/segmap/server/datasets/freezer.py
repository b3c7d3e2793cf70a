"""Freezing one dataset row: its model's conversions become a store in storage.

Run by the worker (:mod:`.worker`) for the dataset it holds; no permission check (the
creator was checked when the dataset was queued). The steps:

1. the model's current region map and the row's options (name, filter, folds, ...);
2. a snapshot of the model's conversions (:func:`.conversions.gather`), in a work
   folder beside the stores;
3. for native pairs, the image on each selected scan's own grid, read again from its
   DICOM files (the server's conversions keep only the resampled image);
4. :func:`segmap.datasets.freeze.freeze`: hashes, counts, names, folds, QA;
   then the agreement between the collections of each case's scan
   (:mod:`.agreements`), added to the QA;
5. the store (:func:`segmap.datasets.store.save_store`): manifest, QA, pictures and
   hard links to every file, written whole under ``datasets/{id}`` in storage.

The manifest records, as each file's ``source``, the API path it was read from.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from segmap.datasets.errors import DatasetError
from segmap.datasets.freeze import FreezeOptions, FrozenDataset, freeze
from segmap.datasets.manifest import CaseRecord, FileRecord
from segmap.datasets.native_image import add_native_image
from segmap.datasets.selection import CaseFilter, select
from segmap.datasets.store import save_store
from segmap.server.datasets.agreements import with_collection_agreements
from segmap.server.datasets.conversions import ServerConversion, SourcePaths, gather
from segmap.server.db.datasets import Dataset
from segmap.server.db.engine import Database
from segmap.server.db.registry import MLModel
from segmap.server.imaging.lookup import scan_files
from segmap.server.registry.regionmap import REGION_MAP_FILENAME, model_region_map
from segmap.server.storage import LocalStorage

STORES = "datasets"
"""Storage prefix of every dataset's store (``datasets/{id}``)."""

Progress = Callable[[str, float], None]
"""Called with what freezing does now and the fraction done (0..1); may raise to stop."""


def store_key(dataset_id: int) -> str:
    """The storage key of a dataset's store."""
    return f"{STORES}/{dataset_id}"


def stores_root(storage: LocalStorage) -> Path:
    """The folder holding every store (and the hidden work folders of freezes)."""
    return storage.local_path(STORES)


def clear_leftovers(storage: LocalStorage, dataset_id: int) -> None:
    """Remove what an earlier, interrupted attempt at this dataset left behind."""
    root = stores_root(storage)
    for pattern in (f".work-{dataset_id}", f".{dataset_id}.staging-*", f".{dataset_id}.replaced-*"):
        for path in root.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def freeze_dataset(
    database: Database,
    storage: LocalStorage,
    dataset_id: int,
    paths: SourcePaths,
    progress: Progress,
) -> tuple[int, str]:
    """Freeze the dataset; (case count, store key).

    Raises:
        DatasetError: the dataset cannot be made (the message says why and what to do).
        ServiceError: the model has conflicting region maps.
    """
    with database.session() as db:
        row = db.get(Dataset, dataset_id)
        model = db.get(MLModel, row.model_id) if row is not None else None
        if row is None or model is None:
            raise DatasetError("the dataset or its model was deleted")
        found = model_region_map(db, storage, model)
        if found is None:
            raise DatasetError(
                f"model {model.label!r} has no region map; upload {REGION_MAP_FILENAME} "
                "into one of its folders, then create the dataset again"
            )
        options = FreezeOptions(
            name=row.name,
            dataset_id=row.nnunet_id,
            resampled=row.resampled,
            folds=row.folds,
            seed=row.seed,
            case_filter=CaseFilter.from_dict(row.filter),
            region_map=found.region_map,
        )
        project_id, model_id, label = row.project_id, row.model_id, model.label
    clear_leftovers(storage, dataset_id)
    work = stores_root(storage) / f".work-{dataset_id}"
    work.mkdir(parents=True)
    try:
        progress("reading the model's conversions", 0.02)
        gathered = gather(database, storage, project_id, model_id, work, paths)
        if not gathered.conversions:
            reasons = "; ".join(f"{e.source_key}: {e.reason}" for e in gathered.excluded[:3])
            raise DatasetError(
                f"model {label!r} has no successful conversions to make a dataset of"
                + (f" ({reasons})" if reasons else "; convert its ROI collections first")
            )
        items = gathered.conversions
        _check_selection(items, options)
        if not options.resampled:
            items = _with_native_images(database, storage, items, options, progress)
        sources = {k: v for item in items for k, v in item.sources.items()}
        frozen = freeze(
            [i.conversion for i in items],
            options,
            excluded=gathered.excluded,
            progress=lambda i, n: progress(f"measuring case {i} of {n}", 0.4 + 0.35 * i / n),
        )
        frozen = with_collection_agreements(
            database,
            storage,
            frozen,
            items,
            model_id,
            work,
            progress=lambda i, n: progress(
                f"comparing the collections of scan {i} of {n}", 0.75 + 0.08 * i / n
            ),
        )
        by_sha = {
            r.sha256: Path(r.source) for c in frozen.manifest.cases for r in (c.image, c.mask)
        }
        progress("keeping the dataset's files", 0.85)
        key = store_key(dataset_id)
        save_store(
            _with_sources(frozen, sources),
            storage.local_path(key),
            force=True,
            resolve=lambda record: by_sha[record.sha256],
        )
        return len(frozen.manifest.cases), key
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_selection(items: list[ServerConversion], options: FreezeOptions) -> None:
    """Refuse, in the API's words, what the library would refuse in the command line's:
    too few subjects for the folds, resampled pairs of several spacings."""
    assert options.region_map is not None
    sha = options.region_map.sha256
    chosen = [
        c for c in select([i.conversion for i in items], options.case_filter) if c.map_sha256 == sha
    ]
    subjects = {c.subject or c.study_instance_uid for c in chosen}
    if chosen and len(subjects) < options.folds:
        raise DatasetError(
            f"the {len(chosen)} case(s) chosen come from {len(subjects)} subject(s), which "
            f"cannot fill {options.folds} folds when a subject's cases stay in one fold; "
            + (
                f"ask for at most {len(subjects)} folds ('folds')"
                if len(subjects) >= 2
                else "a dataset needs cases of at least 2 subjects"
            )
        )
    if options.resampled:
        spacings = {
            tuple(round(s, 3) for s in c.outputs["image_resampled"].spacing_mm)
            for c in chosen
            if "image_resampled" in c.outputs
        }
        if len(spacings) > 1:
            listed = ", ".join(" x ".join(f"{v:g}" for v in s) + " mm" for s in sorted(spacings))
            raise DatasetError(
                f"the model's conversions were made at {len(spacings)} spacings ({listed}): "
                "its voxel spacing changed since some were made; convert its collections "
                "again (Jobs: Convert all), or choose pairs on each scan's own grid"
            )


def _with_native_images(
    database: Database,
    storage: LocalStorage,
    items: list[ServerConversion],
    options: FreezeOptions,
    progress: Progress,
) -> list[ServerConversion]:
    """The conversions the dataset takes given their image on the scan's own grid (the
    others are left as they are: the freeze leaves them out with the reason)."""
    assert options.region_map is not None
    sha = options.region_map.sha256
    chosen = {c.key for c in select([i.conversion for i in items], options.case_filter)}
    todo = [
        i
        for i in items
        if i.conversion.key in chosen
        and i.conversion.map_sha256 == sha
        and "image" not in i.conversion.outputs
    ]
    done: dict[str, ServerConversion] = {}
    for n, item in enumerate(todo):
        progress(f"reading the image of case {n + 1} of {len(todo)}", 0.05 + 0.35 * n / len(todo))
        with database.session() as db:
            files = scan_files(db, storage, item.scan_id)
        if not files:
            raise DatasetError(
                f"{item.conversion.key}: the scan has no image files any more; upload the "
                "series again or leave the case out with a filter"
            )
        mask = item.conversion.outputs.get("mask")
        folder = mask.path.parent if mask is not None else Path()
        conversion = add_native_image(item.conversion, files, folder, fixup=item.fixup)
        image = conversion.outputs["image"]
        sources = {**item.sources, str(image.path): item.scan_source}
        done[item.conversion.key] = dataclasses.replace(
            item, conversion=conversion, sources=sources
        )
    return [done.get(i.conversion.key, i) for i in items]


def _with_sources(frozen: FrozenDataset, sources: dict[str, str]) -> FrozenDataset:
    def named(record: FileRecord) -> FileRecord:
        return dataclasses.replace(record, source=sources.get(record.source, record.source))

    def case(c: CaseRecord) -> CaseRecord:
        return dataclasses.replace(c, image=named(c.image), mask=named(c.mask))

    manifest = dataclasses.replace(
        frozen.manifest, cases=tuple(case(c) for c in frozen.manifest.cases)
    )
    return FrozenDataset(manifest, frozen.qa)
