"""A model's region map on its page, and the region map editor's checks.

The map table shows each region with its colour: the file's ``# segmap colour:``
comments when it has them, else the labelmap palette. The editor's rows are checked with
the same rules as a file (``segmap.labelmap``), reported by row number.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from segmap.labelmap import RegionMap, RegionMapError
from segmap.labelmap.colour_comments import read_colour_comments
from segmap.labelmap.palette import colour_for_value
from segmap.labelmap.rules import parse_value
from segmap.server.db.registry import MLModel
from segmap.server.errors import ServiceError
from segmap.server.registry.files import open_file
from segmap.server.registry.regionmap import model_region_map
from segmap.server.storage import Storage
from segmap.server.web.auth import Principal
from segmap.server.web.pages import colour_hex
from segmap.server.web.urls import path_for


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
    conn: HTTPConnection, db: Session, storage: Storage, who: Principal, model: MLModel
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
    _row, handle = open_file(db, storage, who, model.project_id, model.label, src.folder, src.file)
    with handle:
        colours = read_colour_comments(handle.read().decode("utf-8", errors="replace"))
    rows = [RegionRow(r.label, r.value, _swatch(colours, r.value), r.line) for r in rmap.regions]
    notes = [
        f"{', '.join(labels)} share the value {value}: they form one class in the mask."
        for value, labels in rmap.shared_values().items()
    ]
    download = path_for(
        conn,
        "api_download_file",
        project=model.project_id,
        model=model.label,
        folder=src.folder,
        name=src.file,
    )
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
