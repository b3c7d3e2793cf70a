"""The QA report as a few lines of text, for the terminal: totals, then each flag."""

from __future__ import annotations

from segmap.datasets.manifest import Manifest
from segmap.datasets.qa.report import DatasetQA


def _ml(value: float) -> str:
    return f"{value:.4g} mL"


def _agreement(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3g}{unit}"


def summary_lines(manifest: Manifest, qa: DatasetQA) -> list[str]:
    """One line of totals, then one line per outlier, missing region, left-out case,
    scan with several collections and unmatched name."""
    subjects = len({c.subject for c in manifest.cases})
    grid = (
        f"resampled to {' x '.join(f'{s:g}' for s in manifest.spacing_mm)} mm"
        if manifest.spacing_mm
        else "on each scan's own grid"
    )
    lines = [
        f"{len(manifest.cases)} case(s) of {subjects} subject(s), {manifest.modality}, {grid}; "
        f"{manifest.folds} folds grouped by subject (seed {manifest.seed}); "
        f"{len(manifest.excluded)} conversion(s) left out",
        f"QA: {len(qa.regions)} region(s), {len(qa.outliers)} volume outlier(s), "
        f"{len(qa.missing_regions)} missing region(s), {len(qa.unexpected_values)} mask(s) "
        f"with values the map lacks, {len(qa.multiple_collections)} scan pair(s) with "
        f"several collections, {len(qa.unmatched_names)} unmatched region name(s)",
    ]
    for region, v in qa.outliers:
        lines.append(
            f"  outlier    {v.case}  {region.name}: {_ml(v.volume_ml)} (median "
            f"{_ml(region.median_ml or 0.0)}, robust z {v.robust_z:+.1f})"
        )
    for m in qa.missing_regions:
        lines.append(
            f"  missing    {m.case}  {m.region} (present in {m.present_in} of {qa.cases} cases)"
        )
    for e in manifest.excluded:
        lines.append(f"  left out   {e.source_key}: {e.reason}")
    for a in qa.multiple_collections:
        figures = ", ".join(
            f"{r.region} Dice {_agreement(r.dice)} HD95 {_agreement(r.hd95_mm, ' mm')}"
            for r in a.regions
        )
        lines.append(
            f"  agreement  {a.cases[0]} ({a.collections[0]}) vs {a.cases[1]} "
            f"({a.collections[1]}): {figures}"
        )
    for u in qa.unmatched_names:
        hint = f" (closest: {', '.join(u.suggestions)})" if u.suggestions else ""
        lines.append(f"  unmatched  {u.name!r} skipped in {u.cases} case(s){hint}")
    lines.extend(f"  warning    {w}" for w in manifest.warnings)
    return lines
