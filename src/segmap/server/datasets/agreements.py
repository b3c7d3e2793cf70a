"""The QA's agreement table of a server dataset: the collections of each of its scans.

A server dataset takes one conversion per scan (the scan's derived folder of the model),
so its cases never share a scan. The agreement is between the collections of a case's
scan instead: the case's own conversion and every other collection of that scan whose
latest conversion for the model was kept (:mod:`.collection_masks`). Every two of them
are compared by the library (:func:`segmap.datasets.qa.pairs.compare_masks`: Dice and
HD95 per region, on the scan's own grid, whether the dataset's pairs are native or
resampled), the case's collection first, then the others by label. In each pair,
``cases`` names the dataset's case for the collection it took, and is ``""`` for a
collection the dataset does not take.

Kept conversions made with another region map than the dataset's are not compared (their
values mean other regions); the manifest's warnings say which, so they can be converted
again.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from segmap.datasets.freeze import FrozenDataset
from segmap.datasets.labels import LabelTable
from segmap.datasets.qa.pairs import compare_masks
from segmap.datasets.qa.report import CollectionAgreement
from segmap.server.datasets.collection_masks import KeptMask, kept_masks
from segmap.server.datasets.conversions import ServerConversion
from segmap.server.db.engine import Database
from segmap.server.storage import LocalStorage

Progress = Callable[[int, int], None]
"""Called with (scans compared, scans to compare)."""


@dataclass(frozen=True)
class _Member:
    """One collection of a scan in the comparison."""

    case: str  # the dataset's case name, "" when the dataset does not take it
    collection: str
    mask: Path


def with_collection_agreements(
    database: Database,
    storage: LocalStorage,
    frozen: FrozenDataset,
    items: Sequence[ServerConversion],
    model_id: int,
    work: Path,
    progress: Progress | None = None,
) -> FrozenDataset:
    """``frozen`` with the agreement between the collections of each case's scan added to
    its QA (and a warning per kept conversion of another region map)."""
    by_key = {i.conversion.key: i for i in items}
    cases = [(c, by_key[c.source_key]) for c in frozen.manifest.cases if c.source_key in by_key]
    kept = kept_masks(database, storage, model_id, (i.scan_id for _, i in cases), work)
    table = LabelTable(frozen.manifest.region_map)
    sha = frozen.manifest.region_map.sha256
    found: list[CollectionAgreement] = []
    warnings: list[str] = []
    scans = [(c, i) for c, i in cases if _others(kept.get(i.scan_id, []), i)]
    for n, (case, item) in enumerate(scans):
        others = _others(kept[item.scan_id], item)
        stale = [k for k in others if k.map_sha256 != sha]
        warnings.extend(
            f"{case.source_key}: collection {k.collection!r} of this scan was converted with "
            "another region map, so the agreement table leaves it out; convert it again "
            "(Jobs: Convert all) to compare it"
            for k in stale
        )
        own = item.conversion.outputs.get("mask")  # jobs always write it; older ones may not
        members = [_Member(case.name, case.collection, own.path)] if own is not None else []
        members += [
            _Member("", k.collection, k.mask)
            for k in sorted(others, key=lambda k: (k.collection, k.collection_id))
            if k.map_sha256 == sha
        ]
        for a, b in itertools.combinations(members, 2):
            regions = compare_masks(a.mask, b.mask, table)
            if regions is not None:
                found.append(
                    CollectionAgreement(
                        case.series_instance_uid,
                        (a.case, b.case),
                        (a.collection, b.collection),
                        regions,
                    )
                )
        if progress:
            progress(n + 1, len(scans))
    if not found and not warnings:
        return frozen
    qa = dataclasses.replace(
        frozen.qa, multiple_collections=(*frozen.qa.multiple_collections, *found)
    )
    manifest = dataclasses.replace(frozen.manifest, warnings=(*frozen.manifest.warnings, *warnings))
    return FrozenDataset(manifest, qa)


def _others(kept: Sequence[KeptMask], item: ServerConversion) -> list[KeptMask]:
    """The kept conversions of the scan's collections other than the case's own."""
    return [k for k in kept if k.collection_id != item.collection_id]
