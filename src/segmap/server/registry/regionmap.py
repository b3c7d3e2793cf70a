"""The region map of a model: validation on upload and reading it back.

A model's map is any file named ``region2MaskValueMap.txt`` (compared case-insensitively)
in any of its folders. Uploads are checked with ``segmap.labelmap`` — the same rules and
messages as ``segmap map check`` — and refused with every problem when invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from segmap.labelmap import RegionMap, RegionMapError, RegionMapFileError, decode_region_map_bytes
from segmap.server.db.registry import MLModel, ResourceFile, ResourceFolder
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.names import name_key
from segmap.server.registry.mlmodels import get_model
from segmap.server.storage import Storage
from segmap.server.web.auth import Principal

REGION_MAP_FILENAME = "region2MaskValueMap.txt"
# Real maps are a few hundred bytes; this only stops a huge upload being read into memory.
MAX_REGION_MAP_BYTES = 1024 * 1024


def is_region_map_name(name: str) -> bool:
    """Whether a file of this name is a region map."""
    return name_key(name) == name_key(REGION_MAP_FILENAME)


def problems_json(exc: RegionMapError) -> list[dict[str, object]]:
    """The listed problems (the library keeps the first 50) as ``{"line", "text",
    "message"}``, each line's text cut to 80 characters."""
    return [{"line": p.line, "text": p.shown_text, "message": p.message} for p in exc.problems]


def parse_region_map_upload(data: bytes, source: str) -> RegionMap:
    """Parse uploaded bytes; ``Unprocessable`` listing every problem when invalid.

    The error's ``extra`` carries ``problems`` (line, text, message: the first 50) and
    ``problems_not_shown`` (how many more) for the API body, so a large bad file gets a
    small answer.
    """
    if len(data) > MAX_REGION_MAP_BYTES:
        raise Unprocessable(
            f"{source} is {len(data)} bytes, too large for a region map "
            f"(limit {MAX_REGION_MAP_BYTES} bytes); nothing was stored"
        )
    try:
        return decode_region_map_bytes(data, source=source)
    except RegionMapError as exc:
        listed = f" (the first {len(exc.problems)} are listed)" if exc.not_shown else ""
        raise Unprocessable(
            f"{exc.summary}{listed}; nothing was stored:\n" + "\n".join(exc.lines()),
            problems=problems_json(exc),
            problems_not_shown=exc.not_shown,
        ) from None
    except RegionMapFileError as exc:
        raise Unprocessable(
            f"{exc}; nothing was stored",
            problems=[{"line": 0, "text": "", "message": str(exc)}],
        ) from None


@dataclass(frozen=True)
class RegionMapSource:
    """Where a model's map was read from."""

    folder: str
    file: str
    sha256: str


@dataclass(frozen=True)
class ModelRegionMap:
    """A model's region map and its source file."""

    region_map: RegionMap
    source: RegionMapSource

    def to_json(self) -> dict[str, object]:
        """``{"regions": [{"label", "value"}], "source": {"folder", "file", "sha256"}}``."""
        return {
            "regions": [{"label": r.label, "value": r.value} for r in self.region_map.regions],
            "source": {
                "folder": self.source.folder,
                "file": self.source.file,
                "sha256": self.source.sha256,
            },
        }


def has_region_map(db: Session, model: MLModel) -> bool:
    """Whether any folder of the model holds a file named like a region map (no reading)."""
    names = db.scalars(
        select(ResourceFile.name)
        .join(ResourceFolder, ResourceFolder.id == ResourceFile.folder_id)
        .where(ResourceFolder.model_id == model.id)
    ).all()
    return any(is_region_map_name(n) for n in names)


def model_region_map(db: Session, storage: Storage, model: MLModel) -> ModelRegionMap | None:
    """The model's map with no permission check (for jobs); None when it has none.

    Raises ``Conflict`` when folders hold maps with different content.
    """
    rows = db.execute(
        select(ResourceFolder.name, ResourceFile)
        .join(ResourceFile, ResourceFile.folder_id == ResourceFolder.id)
        .where(ResourceFolder.model_id == model.id)
        .order_by(ResourceFolder.name_key)
    ).all()
    maps = [(folder, f) for folder, f in rows if is_region_map_name(f.name)]
    if not maps:
        return None
    digests = {f.sha256 for _, f in maps}
    if len(digests) > 1:
        where = ", ".join(f"{folder}/{f.name} (sha256 {f.sha256[:12]}…)" for folder, f in maps)
        raise Conflict(
            f"model {model.label!r} has different region maps in several folders: {where}; "
            "delete or replace all but one"
        )
    folder, chosen = maps[0]
    source = f"{folder}/{chosen.name}"
    data = storage.read_bytes(chosen.storage_key)
    try:
        region_map = decode_region_map_bytes(data, source=source)
    except (RegionMapError, RegionMapFileError) as exc:
        # Only possible if the rules became stricter after the file was accepted.
        raise Conflict(f"the stored region map is no longer valid: {exc}") from None
    return ModelRegionMap(region_map, RegionMapSource(folder, chosen.name, chosen.sha256))


def get_region_map(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
) -> ModelRegionMap:
    """The model's region map for a reader; ``NotFound`` when it has none, 409 on conflict."""
    _access, model = get_model(db, principal, project_id, model_ref)
    found = model_region_map(db, storage, model)
    if found is None:
        raise NotFound(
            f"model {model.label!r} has no region map: upload a {REGION_MAP_FILENAME} into "
            "one of its folders"
        )
    return found
