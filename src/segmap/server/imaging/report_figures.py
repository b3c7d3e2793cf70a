"""The key figures of a conversion report, for the session page.

Read from the ``report.json`` a job stored in the scan's derived folder with the typed
reader (:meth:`segmap.pipeline.report.ConvertReport.from_dict`): per region what it
matched, its voxels and volume, and the report's own sentences for what was skipped or
decided (:meth:`~segmap.pipeline.report.ConvertReport.notes`). A report that cannot be
read is shown as a problem, never an error page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from segmap.errors import SegmapError
from segmap.pipeline.report import ContourCounts, ConvertReport, RegionRecord
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
        report = ConvertReport.from_dict(data, source="the stored report")
    except (OSError, ValueError, SegmapError) as exc:
        return ReportFigures([], [], 0, 0, f"the report cannot be read ({exc})")
    return report_figures(report)


def report_figures(report: ConvertReport) -> ReportFigures:
    """Regions, voxels, volumes (mL), and the report's notes on what was left out."""
    present = sum(1 for label in report.labels if label.present)
    return ReportFigures(
        regions=[_region_figure(r) for r in report.regions],
        skipped=report.notes(),
        labels_present=present,
        labels_total=len(report.labels),
    )


def _region_figure(r: RegionRecord) -> RegionFigure:
    return RegionFigure(
        name=r.name,
        label=r.matched_label or "—",
        value="" if r.value is None else str(r.value),
        status=r.status,
        voxels=r.voxels,
        volume_text=format_ml(r.volume_mm3),
        contours_text=_contours_text(r.contours, r.frames_used),
    )


def _contours_text(contours: ContourCounts | None, frames_used: int | None) -> str:
    if contours is not None:
        text = f"{contours.used} of {contours.total} contours"
        skipped = [
            f"{n} {why.replace('_', ' ')}" for why, n in contours.skipped_by_reason.items() if n
        ]
        return text + (f" ({', '.join(skipped)} skipped)" if skipped else "")
    if frames_used is not None:
        return f"{frames_used} frames"
    return ""
