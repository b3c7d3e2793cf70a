"""JSON shapes of the registry API (pydantic): projects, members, models, files, maps.

The ``...Out`` shapes read their values from the presenters (``from_attributes``), so
the API and the pages show a row the same way.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from segmap.server.names import (
    MAX_DESCRIPTION_CHARS,
    MAX_LABEL_CHARS,
    MAX_PROJECT_NAME_CHARS,
)
from segmap.server.web.schemas import ErrorOut

# Lengths are checked here first, so an over-long field is refused before any work; the
# services check the same limits again (the pages' forms reach them without these).
_ID_CHARS = 64  # project ids and usernames: names.check_project_id / check_username
_ROLE_CHARS = 32


class _In(BaseModel):
    # Unknown members are refused so a mistyped field name is reported, not ignored.
    model_config = ConfigDict(extra="forbid")


class ProjectIn(_In):
    """A new project: ``id`` is the short identifier used in URLs."""

    id: str = Field(examples=["LIVER01"], max_length=_ID_CHARS)
    name: str = Field(examples=["Liver segmentation study"], max_length=MAX_PROJECT_NAME_CHARS)


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

    username: str = Field(max_length=_ID_CHARS)
    role: str = Field(
        examples=["member"], description="owner, member or collaborator", max_length=_ROLE_CHARS
    )


class MemberOut(BaseModel):
    """A project member."""

    username: str
    role: str


class ModelIn(_In):
    """A new model."""

    label: str = Field(examples=["liver-ct"], max_length=MAX_LABEL_CHARS)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    voxel_spacing: list[float] = Field(
        examples=[[1.0, 1.0, 2.5]],
        description="[x, y, z] in mm, each from 0.01 to 100, and not so fine that a 500 mm "
        "field of view would exceed the voxel budget (2**30 voxels by default)",
        min_length=3,
        max_length=3,
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
    """An invalid region map: the first problems with their line numbers, and how many more.

    At most ``segmap.labelmap.problems.MAX_REPORTED`` problems are listed, so a large
    bad file cannot make an answer of hundreds of megabytes.
    """

    problems: list[MapProblemOut]
    problems_not_shown: int = 0
