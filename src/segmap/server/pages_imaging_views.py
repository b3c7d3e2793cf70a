"""What the session pages show, built from imaging rows, the models' maps and job reports.

Templates get small frozen values, never ORM rows, so rendering touches no database.
A region name is matched against each model's region map with ``RegionMap.match`` (the
same normalised comparison the conversion uses); a report's key figures come from its
``report.json`` as the pipeline wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from segmap.server.db.imaging import DerivedFolder, ImagingSession, RoiCollection, Scan
from segmap.server.db.registry import MLModel
from segmap.server.errors import ServiceError
from segmap.server.pages_common import format_time
from segmap.server.pages_views import project_url
from segmap.server.services import model_region_map
from segmap.server.storage import Storage

API = "/api/v1"
REPORT_NAME = "report.json"
PREVIEW_NAME = "preview.png"
# A report is a few kB; this only keeps a broken or hostile file from being read whole.
MAX_REPORT_BYTES = 8 * 1024 * 1024


def sessions_url(project_id: str) -> str:
    """The project's Sessions tab."""
    return f"{project_url(project_id)}/sessions"


def session_url(project_id: str, session_id: int) -> str:
    """A session's page."""
    return f"{sessions_url(project_id)}/{session_id}"


def session_api_url(project_id: str, session_id: int) -> str:
    """REST URL of a session."""
    return f"{API}/projects/{quote(project_id, safe='')}/sessions/{session_id}"


def derived_file_url(project_id: str, session_id: int, scan_id: int, folder: str, name: str) -> str:
    """REST URL that downloads one derived file."""
    return (
        f"{session_api_url(project_id, session_id)}/scans/{scan_id}/resources/"
        f"{quote(folder, safe='')}/files/{quote(name, safe='')}"
    )


def format_date(value: date | None) -> str:
    """``2024-01-02``, or a dash when unknown."""
    return value.isoformat() if value is not None else "—"


def format_ml(volume_mm3: float) -> str:
    """A volume given in mm³ as millilitres with two decimals (1 mL = 1000 mm³)."""
    return f"{volume_mm3 / 1000.0:.2f} mL"


# --------------------------------------------------------------------------- sessions list


@dataclass(frozen=True)
class ScanRow:
    """A scan as the tables show it."""

    id: int
    series_number: str
    modality: str
    description: str
    slices: int
    series_uid: str


@dataclass(frozen=True)
class SessionRow:
    """A session with its scans, for the Sessions tab."""

    id: int
    label: str
    subject: str
    date_text: str
    url: str
    scans: list[ScanRow]


def scan_row(scan: Scan) -> ScanRow:
    """The scan's table row."""
    return ScanRow(
        id=scan.id,
        series_number="" if scan.series_number is None else str(scan.series_number),
        modality=scan.modality or "—",
        description=scan.description or "—",
        slices=scan.slice_count,
        series_uid=scan.series_instance_uid,
    )


def session_row(project_id: str, session: ImagingSession, scans: list[Scan]) -> SessionRow:
    """The session's row with its scans in series order."""
    return SessionRow(
        id=session.id,
        label=session.label,
        subject=session.subject or "—",
        date_text=format_date(session.study_date),
        url=session_url(project_id, session.id),
        scans=[scan_row(s) for s in scans],
    )


# --------------------------------------------------------------------------- name matching


@dataclass(frozen=True)
class ModelMap:
    """A model of the project and its region map (None with the reason when unusable)."""

    label: str
    url: str
    region_map: Any | None
    problem: str


@dataclass(frozen=True)
class MatchCell:
    """One region name against one model: matched label and value, or suggestions."""

    matched: bool
    label: str = ""
    value: int = 0
    suggestions: tuple[str, ...] = ()
    unknown: bool = False  # the model has no usable map


@dataclass(frozen=True)
class RegionNameRow:
    """A region name of a collection and its match in every model."""

    name: str
    cells: list[MatchCell]


def model_maps(
    db: Session, storage: Storage, project_id: str, models: list[MLModel]
) -> list[ModelMap]:
    """Every model with its map, or why it has none usable."""
    out = []
    for model in models:
        url = f"{project_url(project_id)}/machine-learning/models/{quote(model.label, safe='')}"
        try:
            found = model_region_map(db, storage, model)
        except ServiceError as exc:
            out.append(ModelMap(model.label, url, None, exc.message))
            continue
        if found is None:
            out.append(ModelMap(model.label, url, None, "no region map yet"))
        else:
            out.append(ModelMap(model.label, url, found.region_map, ""))
    return out


def match_rows(names: list[str], maps: list[ModelMap]) -> list[RegionNameRow]:
    """Each region name marked matched/unmatched for every model."""
    rows = []
    for name in names:
        cells = []
        for m in maps:
            if m.region_map is None:
                cells.append(MatchCell(False, unknown=True))
                continue
            region = m.region_map.match(name)
            if region is not None:
                cells.append(MatchCell(True, region.label, region.value))
            else:
                cells.append(MatchCell(False, suggestions=tuple(m.region_map.suggest(name))))
        rows.append(RegionNameRow(name, cells))
    return rows


@dataclass(frozen=True)
class CollectionView:
    """An ROI collection with its region names matched against every model."""

    label: str
    type: str
    scan_text: str
    uploaded_by: str
    uploaded_at_text: str
    download_url: str
    rows: list[RegionNameRow]
    matched_counts: list[int] = field(default_factory=list)


def collection_view(
    project_id: str, collection: RoiCollection, scans: dict[int, Scan], maps: list[ModelMap]
) -> CollectionView:
    """The collection for the session page."""
    scan = scans.get(collection.scan_id)
    scan_text = (
        f"#{scan.series_number} {scan.description or scan.modality}"
        if scan is not None and scan.series_number is not None
        else (scan.description if scan is not None else collection.referenced_series_uid)
    )
    rows = match_rows(collection.names(), maps)
    counts = [sum(1 for r in rows if r.cells[i].matched) for i in range(len(maps))]
    url = (
        f"{session_api_url(project_id, collection.session_id)}/collections/"
        f"{quote(collection.label, safe='')}/file"
    )
    return CollectionView(
        label=collection.label,
        type=collection.collection_type,
        scan_text=scan_text or "—",
        uploaded_by=collection.uploaded_by.username if collection.uploaded_by else "—",
        uploaded_at_text=format_time(collection.uploaded_at),
        download_url=url,
        rows=rows,
        matched_counts=counts,
    )


# --------------------------------------------------------------------------- derived results


@dataclass(frozen=True)
class FileLink:
    """A derived file and where to download it."""

    name: str
    size: int
    url: str


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


@dataclass(frozen=True)
class DerivedView:
    """A derived folder of a scan: its preview, report figures and files."""

    label: str
    scan_text: str
    updated_text: str
    preview_url: str | None
    report: ReportFigures | None
    files: list[FileLink]


def derived_views(
    db: Session,
    storage: Storage,
    project_id: str,
    session_id: int,
    scan: Scan,
    folders: list[DerivedFolder],
) -> list[DerivedView]:
    """Every derived folder of a scan for the session page."""
    del db  # rows are loaded; kept for symmetry with the other builders
    return [_derived_view(storage, project_id, session_id, scan, f) for f in folders]


def _derived_view(
    storage: Storage, project_id: str, session_id: int, scan: Scan, folder: DerivedFolder
) -> DerivedView:
    def url(name: str) -> str:
        return derived_file_url(project_id, session_id, scan.id, folder.label, name)

    names = {f.name: f for f in folder.files}
    report_row = names.get(REPORT_NAME)
    report = (
        _report_figures(storage, report_row.storage_key, report_row.size)
        if report_row is not None
        else None
    )
    return DerivedView(
        label=folder.label,
        scan_text=scan.description or scan.series_instance_uid,
        updated_text=format_time(folder.updated_at),
        preview_url=url(PREVIEW_NAME) if PREVIEW_NAME in names else None,
        report=report,
        files=[FileLink(f.name, f.size, url(f.name)) for f in folder.files],
    )


def _report_figures(storage: Storage, key: str, size: int) -> ReportFigures:
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
