"""What the page templates show, built from the service layer's rows.

Templates get small frozen values rather than ORM rows, so rendering never touches the
database (no lazy loads after the session closes) and every URL is built in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.orm import Session

from segmap.labelmap import RegionMap, RegionMapError
from segmap.labelmap.colour_comments import read_colour_comments
from segmap.labelmap.palette import colour_for_value
from segmap.labelmap.rules import parse_value
from segmap.server.auth import Principal
from segmap.server.db.registry import MLModel, Project
from segmap.server.errors import ServiceError
from segmap.server.pages_common import colour_hex, format_spacing, format_time
from segmap.server.services import model_region_map, open_file
from segmap.server.storage import Storage

API = "/api/v1"


@dataclass(frozen=True)
class NavItem:
    """An entry of the header's main navigation or of the project page's tabs."""

    key: str
    label: str
    url: str


def project_tabs(project_id: str) -> list[NavItem]:
    """The project page's tabs, in order; a page marks its own by ``key``."""
    base = project_url(project_id)
    return [
        NavItem("overview", "Overview", base),
        NavItem("sessions", "Sessions", f"{base}/sessions"),
        NavItem("jobs", "Jobs", f"{base}/jobs"),
        NavItem("machine-learning", "Machine Learning", f"{base}/machine-learning"),
    ]


def project_url(project_id: str) -> str:
    """The project's page."""
    return f"/projects/{quote(project_id, safe='')}"


def model_url(project_id: str, label: str) -> str:
    """The View Model page."""
    return f"{project_url(project_id)}/machine-learning/models/{quote(label, safe='')}"


def resources_api_url(project_id: str, label: str) -> str:
    """REST URL of a model's folders (``/{folder}/files/{name}`` below it)."""
    return (
        f"{API}/projects/{quote(project_id, safe='')}/models/{quote(label, safe='')}/resources"
    )


def file_api_url(project_id: str, label: str, folder: str, name: str) -> str:
    """REST URL that downloads one file of a model."""
    return (
        f"{resources_api_url(project_id, label)}/{quote(folder, safe='')}"
        f"/files/{quote(name, safe='')}"
    )


@dataclass(frozen=True)
class ProjectView:
    """A project as the pages show it."""

    id: str
    name: str
    role: str
    url: str
    model_count: int | None = None
    description: str = ""


def project_view(
    project: Project, role: str | None, who: Principal, model_count: int | None = None
) -> ProjectView:
    """The project with the caller's role in words (a site admin may have none)."""
    shown = role or ("site admin" if who.is_admin else "none")
    return ProjectView(project.id, project.name, shown, project_url(project.id), model_count)


@dataclass(frozen=True)
class ModelView:
    """An installed model as the pages show it."""

    label: str
    description: str
    spacing_text: str
    created_by: str | None
    created_at_text: str
    url: str


def model_view(project_id: str, model: MLModel) -> ModelView:
    """The model's details, with its voxel spacing in mm."""
    return ModelView(
        label=model.label,
        description=model.description,
        spacing_text=format_spacing(model.voxel_spacing),
        created_by=model.created_by.username if model.created_by else None,
        created_at_text=format_time(model.created_at),
        url=model_url(project_id, model.label),
    )


@dataclass(frozen=True)
class RegionRow:
    """One region of the map table."""

    label: str
    value: int
    colour: str
    line: int


@dataclass(frozen=True)
class MapSourceView:
    """Which file the map came from, and where to download it."""

    folder: str
    file: str
    sha256: str
    download_url: str


@dataclass(frozen=True)
class RegionMapView:
    """The model's map for the model page: rows, or the problems that stop it being read."""

    regions: list[RegionRow]
    source: MapSourceView | None
    dtype: str
    notes: list[str]
    problems: list[str]
    problem_heading: str


def region_map_view(
    db: Session, storage: Storage, who: Principal, project_id: str, model: MLModel
) -> RegionMapView:
    """The model's region map, or why it has none usable (e.g. two folders disagree).

    Colours come from the file's ``# segmap colour:`` comments when it has them (maps
    imported from 3D Slicer or ITK-SNAP), else from the labelmap palette.
    """
    try:
        found = model_region_map(db, storage, model)
    except ServiceError as exc:
        return RegionMapView([], None, "", [], [exc.message], "The region map cannot be used:")
    if found is None:
        return RegionMapView([], None, "", [], [], "")
    rmap = found.region_map
    src = found.source
    _row, handle = open_file(db, storage, who, project_id, model.label, src.folder, src.file)
    with handle:
        colours = read_colour_comments(handle.read().decode("utf-8", errors="replace"))
    rows = [
        RegionRow(r.label, r.value, _swatch(colours, r.value), r.line)
        for r in rmap.regions
    ]
    notes = [
        f"{', '.join(labels)} share the value {value}: they form one class in the mask."
        for value, labels in rmap.shared_values().items()
    ]
    download = file_api_url(project_id, model.label, src.folder, src.file)
    source = MapSourceView(src.folder, src.file, src.sha256, download)
    return RegionMapView(rows, source, rmap.dtype.name, notes, [], "")


def _swatch(colours: dict[int, tuple[int, int, int, int]], value: int) -> str:
    return colour_hex(colours.get(value) or colour_for_value(value))


def editor_rows_of(current: RegionMapView) -> list[dict[str, str]]:
    """Editor rows (label, value as text) starting from the model's current map."""
    return [{"label": r.label, "value": str(r.value)} for r in current.regions]


def editor_problems(labels: list[str], values: list[str]) -> tuple[RegionMap | None, list[str]]:
    """Check the editor's rows with the region map rules; the map, or every problem by row.

    Values are read like a file's (``parse_value``); labels, duplicates and the empty map
    are checked by ``RegionMap.from_pairs``, whose problem lines are row numbers.
    """
    if len(labels) != len(values):
        return None, ["The form sent a different number of labels and values; reload the page."]
    problems: list[tuple[int, str]] = []
    pairs: list[tuple[str, int]] = []
    for row, text in enumerate(values, start=1):
        value, problem = parse_value(text.strip())
        if problem is not None or value is None:
            problems.append((row, f"row {row}: {problem}"))
            value = 1  # a stand-in, so the row's label is still checked below
        pairs.append((labels[row - 1], value))
    try:
        region_map: RegionMap | None = RegionMap.from_pairs(pairs)
    except RegionMapError as exc:
        region_map = None
        for p in exc.problems:
            where = f"row {p.line}: " if p.line else ""
            problems.append((p.line, where + p.message))
    problems.sort(key=lambda item: item[0])
    return (region_map if not problems else None), [text for _, text in problems]
