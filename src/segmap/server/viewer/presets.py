"""A model's region map as the segments the viewer starts with.

One segment per region, in map order, named exactly as the map names it and coloured as
the model page shows it (the file's ``# segmap colour:`` comments, else the labelmap
palette; :func:`segmap.server.registry.map_views.region_map_view` decides both). Segment
numbers run 1..N in that order: OHIF's RTSTRUCT export assumes consecutive segment
indices from 1, and segmap maps stored segments to the region map by label, not number.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from segmap.server.db.registry import MLModel
from segmap.server.registry.map_views import region_map_view
from segmap.server.storage import Storage
from segmap.server.web.auth import Principal


@dataclass(frozen=True)
class PresetSegment:
    """One segment: its label, the mask value it will be painted with, an RGB colour."""

    label: str
    value: int
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Preset:
    """The segments of one model of one project, in map order."""

    project: str
    model: str
    segments: tuple[PresetSegment, ...]

    def to_json(self) -> dict[str, object]:
        """The shape the generated ``app-config.js`` reads."""
        return {
            "project": self.project,
            "model": self.model,
            "segments": [
                {"segmentIndex": n, "label": s.label, "value": s.value, "color": [*s.rgb, 255]}
                for n, s in enumerate(self.segments, start=1)
            ],
        }


def model_preset(
    conn: HTTPConnection, db: Session, storage: Storage, who: Principal, model: MLModel
) -> Preset | None:
    """The preset of ``model`` for ``who`` (who must be able to read its project), or None
    when the model has no usable region map (none, or folders that disagree)."""
    view = region_map_view(conn, db, storage, who, model)
    if not view.regions:
        return None
    segments = tuple(PresetSegment(r.label, r.value, _rgb(r.colour)) for r in view.regions)
    return Preset(project=model.project_id, model=model.label, segments=segments)


def _rgb(colour_hex: str) -> tuple[int, int, int]:
    digits = colour_hex.lstrip("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
