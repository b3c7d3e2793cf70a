"""JSON shapes of the registry API (pydantic): projects, members, models, files, maps.

The ``...Out`` shapes read their values from the presenters (``from_attributes``), so
the API and the pages show a row the same way.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from segmap.server.web.schemas import ErrorOut


class _In(BaseModel):
    # Unknown members are refused so a mistyped field name is reported, not ignored.
    model_config = ConfigDict(extra="forbid")


class ProjectIn(_In):
    """A new project: ``id`` is the short identifier used in URLs."""

    id: str = Field(examples=["LIVER01"])
    name: str = Field(examples=["Liver segmentation study"])


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProjectOut(_Out):
    """A project, with the caller's role (null for a site admin who is not a member)."""

    id: str
    name: str
    role: str | None
    created_by: str | None
    created_at: datetime


class MemberIn(_In):
    """Give a user a role in a project."""

    username: str
    role: str = Field(examples=["member"], description="owner, member or collaborator")


class MemberOut(BaseModel):
    """A project member."""

    username: str
    role: str


class ModelIn(_In):
    """A new model."""

    label: str = Field(examples=["liver-ct"])
    description: str = ""
    voxel_spacing: list[float] = Field(
        examples=[[1.0, 1.0, 2.5]], description="[x, y, z] in mm, each greater than 0"
    )
    automation: bool = False


class ModelOut(_Out):
    """A model installed in a project."""

    id: int
    project: str
    label: str
    description: str
    voxel_spacing: list[float]
    automation: bool
    created_by: str | None
    created_at: datetime


class FileOut(_Out):
    """A file in a model folder."""

    name: str
    size: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime


class UploadOut(FileOut):
    """An uploaded file and its folder."""

    folder: str


class FolderOut(_Out):
    """A file-resource folder (``label`` repeats ``name``, XNAT's word for it)."""

    name: str
    label: str
    created_at: datetime
    files: list[FileOut]


class RegionOut(BaseModel):
    """One region of a map."""

    label: str
    value: int


class RegionMapSourceOut(BaseModel):
    """Where the map was read from."""

    folder: str
    file: str
    sha256: str


class RegionMapOut(BaseModel):
    """A model's region map."""

    regions: list[RegionOut]
    source: RegionMapSourceOut


class MapProblemOut(BaseModel):
    """One problem of an invalid region map."""

    line: int
    text: str
    message: str


class ModelPatchIn(_In):
    """Change a model's automation (generate masks when an ROI collection arrives)."""

    automation: bool


class MapErrorOut(ErrorOut):
    """An invalid region map: every problem with its line number."""

    problems: list[MapProblemOut]
