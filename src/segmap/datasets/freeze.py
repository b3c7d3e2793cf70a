"""Freezing: a selection of a model's conversions becomes a manifest and its QA report.

Every conversion the filter keeps is checked and measured once: its image/mask pair
(native, or resampled with ``resampled``) must exist; every file is hashed (SHA-256); the
mask's values are counted. A conversion made with another region map than the dataset's,
or whose mask holds values the map does not, is left out with the reason. Then the
cases get their names (:mod:`.naming`) and folds (:mod:`.folds`), scans with several
collections are compared (:mod:`.qa.pairs`), and the QA report is built.

Refused outright, with a message that says what to do: a filter that keeps nothing,
conversions made with several maps when no map is given, mixed modalities, cases
without the requested pair, resampled pairs of different spacings.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import segmap
from segmap.datasets.errors import DatasetError
from segmap.datasets.folds import DEFAULT_FOLDS, DEFAULT_SEED, grouped_folds
from segmap.datasets.labels import LabelTable
from segmap.datasets.manifest import CaseRecord, ExcludedCase, FileRecord, Manifest
from segmap.datasets.naming import case_name, check_dataset_id, check_dataset_name
from segmap.datasets.qa.casestats import MaskStats, mask_stats
from segmap.datasets.qa.pairs import compare_masks
from segmap.datasets.qa.report import (
    CaseInput,
    CollectionAgreement,
    DatasetQA,
    UnexpectedValues,
    build_qa,
)
from segmap.datasets.selection import CaseFilter, select
from segmap.datasets.sources import Conversion, OutputFile
from segmap.labelmap import RegionMap
from segmap.pipeline.report import file_sha256

DEFAULT_ID = 500
SPACING_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class FreezeOptions:
    """How to freeze.

    Attributes:
        name: the dataset's name (letters, digits, ``_``, ``-``).
        dataset_id: nnU-Net's dataset number (1 to 999).
        resampled: use the pairs resampled to the conversions' spacing, not the native ones.
        folds: cross-validation folds, grouped by subject.
        seed: the seed of the fold shuffle.
        case_filter: which conversions to take (all by default).
        region_map: the model's map; None takes the one every conversion was made with.
    """

    name: str = "segmap"
    dataset_id: int = DEFAULT_ID
    resampled: bool = False
    folds: int = DEFAULT_FOLDS
    seed: int = DEFAULT_SEED
    case_filter: CaseFilter = field(default_factory=CaseFilter)
    region_map: RegionMap | None = None


@dataclass(frozen=True)
class FrozenDataset:
    """A frozen dataset: its manifest and its QA report."""

    manifest: Manifest
    qa: DatasetQA


@dataclass
class _Taken:
    conversion: Conversion
    image: OutputFile
    mask: OutputFile
    image_record: FileRecord
    mask_record: FileRecord
    stats: MaskStats


Progress = Callable[[int, int], None]
"""Called with (conversions measured, conversions to measure)."""


def freeze(
    conversions: Sequence[Conversion],
    options: FreezeOptions | None = None,
    *,
    excluded: Sequence[ExcludedCase] = (),
    progress: Progress | None = None,
) -> FrozenDataset:
    """Freeze the conversions ``options.case_filter`` keeps; see the module docstring.

    ``excluded`` lists conversions the caller already left out (shown in the manifest).

    Raises:
        DatasetError: the selection cannot make a dataset (the message says why).
    """
    options = options or FreezeOptions()
    check_dataset_name(options.name)
    check_dataset_id(options.dataset_id)
    chosen = sorted(select(conversions, options.case_filter), key=lambda c: c.key)
    if not chosen:
        raise DatasetError(
            f"the filter keeps none of the {len(conversions)} conversion(s); "
            f"filter: {options.case_filter.to_dict() or 'none'}"
        )
    rmap = options.region_map or _shared_map(chosen)
    table = LabelTable(rmap)
    left_out = list(excluded)
    warnings: list[str] = []
    _check_pairs(chosen, options.resampled)
    taken: list[_Taken] = []
    unexpected: list[UnexpectedValues] = []
    for i, conv in enumerate(chosen):
        if conv.map_sha256 != rmap.sha256:
            left_out.append(
                ExcludedCase(
                    conv.key,
                    f"converted with another region map (sha256 {conv.map_sha256[:12]}...)",
                )
            )
        else:
            notes: list[str] = []
            item = _measure(conv, options.resampled, notes)
            bad = table.unexpected(item.stats.voxels)
            if not bad:
                warnings.extend(notes)  # a case left out needs no warning besides why
            if bad:
                unexpected.append(UnexpectedValues(conv.key, tuple(bad)))
                left_out.append(
                    ExcludedCase(
                        conv.key, f"its mask holds value(s) {bad} that the region map does not"
                    )
                )
            else:
                taken.append(item)
        if progress:
            progress(i + 1, len(chosen))
    if not taken:
        raise DatasetError(
            "no conversion is left to make a dataset of: "
            + "; ".join(f"{e.source_key}: {e.reason}" for e in left_out[-3:])
        )
    modality = _one_modality(taken)
    spacing = _one_spacing(taken) if options.resampled else None
    cases = _records(taken, options, warnings)
    names = {id(t): c.name for t, c in zip(taken, cases, strict=True)}
    qa = build_qa(
        table,
        [CaseInput(c.name, t.conversion.key, t.stats) for t, c in zip(taken, cases, strict=True)],
        unexpected=unexpected,
        agreements=_agreements(taken, names, table),
        unmatched=[[(u.name, u.suggestions) for u in t.conversion.unmatched] for t in taken],
    )
    manifest = Manifest(
        name=options.name,
        dataset_id=options.dataset_id,
        region_map=rmap,
        resampled=options.resampled,
        spacing_mm=spacing,
        modality=modality,
        folds=options.folds,
        seed=options.seed,
        filter=options.case_filter.to_dict(),
        cases=tuple(cases),
        created_utc=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        segmap_version=segmap.__version__,
        excluded=tuple(left_out),
        warnings=tuple(warnings),
    )
    return FrozenDataset(manifest, qa)


def _shared_map(chosen: Sequence[Conversion]) -> RegionMap:
    by_sha: dict[str, list[Conversion]] = {}
    for c in chosen:
        by_sha.setdefault(c.map_sha256, []).append(c)
    if len(by_sha) > 1:
        counts = ", ".join(
            f"{sha[:12]}... ({len(cs)} case(s), e.g. {cs[0].key})"
            for sha, cs in sorted(by_sha.items(), key=lambda kv: -len(kv[1]))
        )
        raise DatasetError(
            f"the conversions were made with {len(by_sha)} different region "
            f"maps: {counts}; give the model's map (--map FILE) and only the "
            "cases converted with it are taken"
        )
    return RegionMap.from_pairs(chosen[0].map_regions)


def _check_pairs(chosen: Sequence[Conversion], resampled: bool) -> None:
    lacking = [c.key for c in chosen if c.pair(resampled) is None]
    if not lacking:
        return
    listed = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
    if resampled:
        raise DatasetError(
            f"{len(lacking)} case(s) have no resampled image and mask (they "
            f"were converted without --spacing): {listed}; run 'segmap batch' "
            "again with --spacing, leave them out with a filter, or drop "
            "--resampled"
        )
    raise DatasetError(
        f"{len(lacking)} case(s) have no image on the scan's own grid (they "
        f"were converted with --spacing or mask-only): {listed}; use "
        "--resampled, leave them out with a filter, or run 'segmap batch' "
        "again without --spacing"
    )


def _record(f: OutputFile) -> FileRecord:
    if not f.path.is_file():
        raise DatasetError(
            f"{f.path}: the file its report lists is missing; convert the case again"
        )
    return FileRecord(file_sha256(f.path), f.path.stat().st_size, str(f.path))


def _measure(conv: Conversion, resampled: bool, warnings: list[str]) -> _Taken:
    pair = conv.pair(resampled)
    assert pair is not None  # checked by _check_pairs
    image, mask = pair
    image_record, mask_record = _record(image), _record(mask)
    for f, rec in ((image, image_record), (mask, mask_record)):
        if rec.sha256 != f.sha256:
            warnings.append(
                f"{conv.key}: {f.path.name} changed after its conversion (its "
                "SHA-256 differs from the report's); the dataset takes it as it "
                "is now"
            )
    return _Taken(conv, image, mask, image_record, mask_record, mask_stats(mask.path))


def _one_modality(taken: Sequence[_Taken]) -> str:
    found: dict[str, int] = {}
    for t in taken:
        found[t.conversion.modality] = found.get(t.conversion.modality, 0) + 1
    if len(found) > 1:
        listed = ", ".join(f"{m} ({n})" for m, n in sorted(found.items()))
        raise DatasetError(
            f"the selection mixes modalities {listed}; a dataset's images are "
            "one channel of one modality: filter the cases to one"
        )
    return next(iter(found))


def _one_spacing(taken: Sequence[_Taken]) -> tuple[float, float, float]:
    first = taken[0].image.spacing_mm
    for t in taken:
        for f in (t.image, t.mask):
            if any(
                abs(a - b) > SPACING_TOLERANCE_MM for a, b in zip(f.spacing_mm, first, strict=True)
            ):
                raise DatasetError(
                    f"resampled pairs have different spacings: {taken[0].conversion.key} is "
                    f"{_mm(first)}, {t.conversion.key} is {_mm(f.spacing_mm)}; run "
                    "'segmap batch' again with one --spacing for every case"
                )
    return first


def _mm(spacing: Sequence[float]) -> str:
    return " x ".join(f"{s:g}" for s in spacing) + " mm"


def _records(
    taken: Sequence[_Taken], options: FreezeOptions, warnings: list[str]
) -> list[CaseRecord]:
    names: set[str] = set()
    subjects: list[str] = []
    for t in taken:
        c = t.conversion
        if not c.subject:
            warnings.append(
                f"{c.key}: the scan has no PatientID; its folds group it by its study instead"
            )
        subjects.append(c.subject or f"study:{c.study_instance_uid}")
    folds = grouped_folds(subjects, options.folds, options.seed)
    records = []
    for t, subject, fold in zip(taken, subjects, folds, strict=True):
        c = t.conversion
        name = case_name(c.series_instance_uid, c.annotation_sop_instance_uid, names)
        names.add(name)
        records.append(
            CaseRecord(
                name=name,
                fold=fold,
                subject=subject,
                session=c.session,
                collection=c.collection,
                annotator=c.annotator,
                source_key=c.key,
                study_instance_uid=c.study_instance_uid,
                series_instance_uid=c.series_instance_uid,
                annotation_sop_instance_uid=c.annotation_sop_instance_uid,
                annotation_series_instance_uid=c.annotation_series_instance_uid,
                annotation_modality=c.annotation_modality,
                modality=c.modality,
                map_sha256=c.map_sha256,
                segmap_version=c.segmap_version,
                size_ijk=t.mask.size_ijk,
                spacing_mm=t.mask.spacing_mm,
                image=t.image_record,
                mask=t.mask_record,
            )
        )
    return records


def _agreements(
    taken: Sequence[_Taken], names: dict[int, str], table: LabelTable
) -> list[CollectionAgreement]:
    """Dice and HD95 per region for every two cases on one scan (native masks)."""
    by_scan: dict[str, list[_Taken]] = {}
    for t in taken:
        by_scan.setdefault(t.conversion.series_instance_uid, []).append(t)
    out = []
    for series_uid, group in by_scan.items():
        for a, b in itertools.combinations(group, 2):
            regions = compare_masks(_native_mask(a), _native_mask(b), table)
            if regions is None:
                continue  # not the same grid after all: nothing to compare voxel by voxel
            out.append(
                CollectionAgreement(
                    series_uid,
                    (names[id(a)], names[id(b)]),
                    (a.conversion.collection, b.conversion.collection),
                    regions,
                )
            )
    return out


def _native_mask(t: _Taken) -> Path:
    native = t.conversion.outputs.get("mask")
    return native.path if native is not None else t.mask.path
