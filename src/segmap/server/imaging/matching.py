"""Region names of ROI collections matched against every model's region map.

A name is matched with ``RegionMap.match`` (the same normalised comparison the
conversion uses) and, when it matches nothing, given the map's closest labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from segmap.labelmap import RegionMap
from segmap.server.db.registry import MLModel
from segmap.server.errors import ServiceError
from segmap.server.registry.regionmap import model_region_map
from segmap.server.storage import Storage
from segmap.server.web.urls import path_for


@dataclass(frozen=True)
class ModelMap:
    """A model of the project and its region map (None with the reason when unusable)."""

    label: str
    url: str
    region_map: RegionMap | None
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
    conn: HTTPConnection, db: Session, storage: Storage, models: list[MLModel]
) -> list[ModelMap]:
    """Every model with its map, or why it has none usable."""
    out = []
    for model in models:
        url = path_for(conn, "model_page", project=model.project_id, model=model.label)
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
class CollectionMatches:
    """A collection's region names matched against every model (in ``maps`` order)."""

    rows: list[RegionNameRow]
    matched_counts: list[int]


def collection_matches(names: list[str], maps: list[ModelMap]) -> CollectionMatches:
    """The rows of a collection's match table and, per model, how many names matched."""
    rows = match_rows(names, maps)
    counts = [sum(1 for r in rows if r.cells[i].matched) for i in range(len(maps))]
    return CollectionMatches(rows, counts)
