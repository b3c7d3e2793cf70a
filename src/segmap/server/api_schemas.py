"""JSON shapes of the REST API (pydantic), and converters from database rows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from segmap.server.db.accounts import User
from segmap.server.db.registry import MLModel, ResourceFile, ResourceFolder
from segmap.server.services import ProjectEntry


class _In(BaseModel):
    # Unknown members are refused so a mistyped field name is reported, not ignored.
    model_config = ConfigDict(extra="forbid")


class TokenRequest(_In):
    """Credentials exchanged for an API token."""

    username: str
    password: str


class TokenOut(BaseModel):
    """A new API token: send it as ``Authorization: Bearer <token>``."""

    token: str
    expires_at: datetime | None = None
    """When the token stops working (UTC); None when tokens never expire."""


class MeOut(BaseModel):
    """The caller."""

    username: str
    is_admin: bool


class ProjectIn(_In):
    """A new project: ``id`` is the short identifier used in URLs."""

    id: str = Field(examples=["LIVER01"])
    name: str = Field(examples=["Liver segmentation study"])


class ProjectOut(BaseModel):
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


class ModelOut(BaseModel):
    """A model installed in a project."""

    id: int
    project: str
    label: str
    description: str
    voxel_spacing: list[float]
    automation: bool
    created_by: str | None
    created_at: datetime


class FileOut(BaseModel):
    """A file in a model folder."""

    name: str
    size: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime


class UploadOut(FileOut):
    """An uploaded file and its folder."""

    folder: str


class FolderOut(BaseModel):
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


class ErrorOut(BaseModel):
    """Every error: ``detail`` says what went wrong and what to do."""

    detail: str


class MapProblemOut(BaseModel):
    """One problem of an invalid region map."""

    line: int
    text: str
    message: str


class MapErrorOut(ErrorOut):
    """An invalid region map: every problem with its line number."""

    problems: list[MapProblemOut]


def _name(user: User | None) -> str | None:
    return user.username if user is not None else None


def project_out(entry: ProjectEntry) -> ProjectOut:
    """JSON of a listed project."""
    p = entry.project
    return ProjectOut(
        id=p.id,
        name=p.name,
        role=entry.role,
        created_by=_name(p.created_by),
        created_at=p.created_at,
    )


def model_out(model: MLModel) -> ModelOut:
    """JSON of a model."""
    return ModelOut(
        id=model.id,
        project=model.project_id,
        label=model.label,
        description=model.description,
        voxel_spacing=list(model.voxel_spacing),
        automation=model.automation,
        created_by=_name(model.created_by),
        created_at=model.created_at,
    )


def file_out(f: ResourceFile) -> FileOut:
    """JSON of a file."""
    return FileOut(
        name=f.name,
        size=f.size,
        sha256=f.sha256,
        uploaded_by=_name(f.uploaded_by),
        uploaded_at=f.uploaded_at,
    )


def folder_out(folder: ResourceFolder) -> FolderOut:
    """JSON of a folder with its files."""
    return FolderOut(
        name=folder.name,
        label=folder.name,
        created_at=folder.created_at,
        files=[file_out(f) for f in folder.files],
    )
