"""The key figures of a conversion report, for the session page.

Read from the ``report.json`` a job stored in the scan's derived folder, as the
pipeline wrote it: per region what it matched, its voxels and volume, what was skipped
and why. A report that cannot be read is shown as a problem, never an error page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from segmap.server.storage import Storage

REPORT_NAME = "report.json"
PREVIEW_NAME = "preview.png"
# A report is a few kB; this only keeps a broken or hostile file from being read whole.
MAX_REPORT_BYTES = 8 * 1024 * 1024


def format_ml(volume_mm3: float) -> str:
    """A volume given in mm³ as millilitres with two decimals (1 mL = 1000 mm³)."""
    return f"{volume_mm3 / 1000.0:.2f} mL"


@dataclass(frozen=True)
class RegionFigure:
    """One ROI/segment of a report: what it matched and how big it came out."""

    name: str
    label: str
    value: str
    status: str
    voxels: int
    volume_text: str
    contours_text: str


@dataclass(frozen=True)
class ReportFigures:
    """The key figures of a conversion report, or why it could not be read."""

    regions: list[RegionFigure]
    skipped: list[str]
    labels_present: int
    labels_total: int
    problem: str = ""


def stored_report_figures(storage: Storage, key: str, size: int) -> ReportFigures:
    """The figures of the stored report at ``key`` (``size`` bytes), or why not."""
    if size > MAX_REPORT_BYTES:
        return ReportFigures([], [], 0, 0, f"the report is {size} bytes, too large to show")
    try:
        data = json.loads(storage.read_bytes(key).decode("utf-8"))
        return report_figures(data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return ReportFigures([], [], 0, 0, f"the report cannot be read ({exc})")


def _contours_text(contours: dict[str, Any] | None, frames_used: Any) -> str:
    if contours:
        text = f"{contours.get('used', 0)} of {contours.get('total', 0)} contours"
        reasons = contours.get("skipped_by_reason") or {}
        skipped = [f"{n} {why.replace('_', ' ')}" for why, n in reasons.items() if n]
        return text + (f" ({', '.join(skipped)} skipped)" if skipped else "")
    if frames_used is not None:
        return f"{frames_used} frames"
    return ""


def report_figures(report: dict[str, Any]) -> ReportFigures:
    """Regions, voxels, volumes (mL) and what was skipped and why, from a report's JSON."""
    regions = [_region_figure(r) for r in report.get("regions", [])]
    labels = report.get("labels") or []
    present = sum(1 for label in labels if label.get("present"))
    return ReportFigures(regions, skipped_lines(report), present, len(labels))


def _region_figure(r: dict[str, Any]) -> RegionFigure:
    return RegionFigure(
        name=str(r.get("name", "")),
        label=str(r.get("matched_label") or "—"),
        value="" if r.get("value") is None else str(r.get("value")),
        status=str(r.get("status", "")),
        voxels=int(r.get("voxels") or 0),
        volume_text=format_ml(float(r.get("volume_mm3") or 0.0)),
        contours_text=_contours_text(r.get("contours"), r.get("frames_used")),
    )


def skipped_lines(report: dict[str, Any]) -> list[str]:
    """Sentences for what a conversion left out or decided, and why."""
    lines: list[str] = []
    for r in report.get("regions", []):
        what = f"{'ROI' if r.get('source') == 'ROI' else 'segment'} {str(r.get('name', ''))!r}"
        if r.get("status") == "unmatched":
            closest = ", ".join(r.get("suggestions") or [])
            hint = f" (closest map labels: {closest})" if closest else ""
            lines.append(f"{what} matches no label of the map{hint}; not painted.")
        elif r.get("status") == "empty":
            lines.append(
                f"{what} matched {r.get('matched_label')!r} but none of its voxels lies in "
                "the image."
            )
        reasons = {
            k: v for k, v in ((r.get("contours") or {}).get("skipped_by_reason") or {}).items() if v
        }
        if reasons:
            parts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in reasons.items())
            lines.append(f"{what}: {sum(reasons.values())} contours skipped ({parts}).")
    absent = [str(a) for a in report.get("absent_labels") or []]
    if absent:
        lines.append(f"Map labels absent from the annotation: {', '.join(absent)}.")
    for o in report.get("overlaps") or []:
        lines.append(
            f"{o.get('first')} and {o.get('second')} overlap in {o.get('voxels')} voxels; "
            f"{o.get('winner')} is painted there."
        )
    lines.extend(str(w) for w in report.get("warnings") or [])
    lines.extend(f"Fix-up: {f}" for f in report.get("fixups") or [])
    return lines
