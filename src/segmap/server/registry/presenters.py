"""How a project, a model, a folder and a file are shown, by the API and by the pages alike.

One frozen value per resource, built from its row with the URLs taken from the routes
(:func:`segmap.server.web.urls.path_for`). The API's ``...Out`` shapes read these values
(``from_attributes``); the templates read the same values and the ``..._text`` ones.
Templates never see an ORM row, so rendering touches no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import HTTPConnection

from segmap.server.db.accounts import User
from segmap.server.db.registry import MLModel, Project, ResourceFile, ResourceFolder
from segmap.server.web.auth import Principal
from segmap.server.web.pages import format_spacing, format_time
from segmap.server.web.urls import path_for


def username(user: User | None) -> str | None:
    """The user's name, None for a deleted account."""
    return user.username if user is not None else None


@dataclass(frozen=True)
class ProjectView:
    """A project, and the caller's role in it (None: a site admin who is not a member)."""

    id: str
    name: str
    role: str | None
    role_text: str
    created_by: str | None
    created_at: datetime
    url: str
    model_count: int | None = None
    description: str = ""


def present_project(
    conn: HTTPConnection,
    project: Project,
    role: str | None,
    who: Principal,
    model_count: int | None = None,
) -> ProjectView:
    """The project as the caller sees it; ``role_text`` names a site admin's standing."""
    text = role or ("site admin" if who.is_admin else "none")
    return ProjectView(
        id=project.id,
        name=project.name,
        role=role,
        role_text=text,
        created_by=username(project.created_by),
        created_at=project.created_at,
        url=path_for(conn, "project_page", project=project.id),
        model_count=model_count,
    )


@dataclass(frozen=True)
class ModelView:
    """An installed model: details, its page and its API address."""

    id: int
    project: str
    label: str
    description: str
    voxel_spacing: tuple[float, float, float]
    automation: bool
    created_by: str | None
    created_at: datetime
    url: str
    api_url: str

    @property
    def spacing_text(self) -> str:
        """Voxel spacing as ``x × y × z mm``."""
        return format_spacing(self.voxel_spacing)

    @property
    def created_at_text(self) -> str:
        """When it was installed, in UTC."""
        return format_time(self.created_at)


def present_model(conn: HTTPConnection, model: MLModel) -> ModelView:
    """The model (spacing in mm along x, y, z: columns, rows, slices)."""
    return ModelView(
        id=model.id,
        project=model.project_id,
        label=model.label,
        description=model.description,
        voxel_spacing=model.voxel_spacing,
        automation=model.automation,
        created_by=username(model.created_by),
        created_at=model.created_at,
        url=path_for(conn, "model_page", project=model.project_id, model=model.label),
        api_url=path_for(conn, "api_get_model", project=model.project_id, model=model.label),
    )


@dataclass(frozen=True)
class FileView:
    """A file of a model folder and where to download it."""

    name: str
    size: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime
    download_url: str


def present_file(conn: HTTPConnection, folder: ResourceFolder, row: ResourceFile) -> FileView:
    """A file of ``folder`` (size in bytes)."""
    model = folder.model
    url = path_for(
        conn,
        "api_download_file",
        project=model.project_id,
        model=model.label,
        folder=folder.name,
        name=row.name,
    )
    return FileView(row.name, row.size, row.sha256, username(row.uploaded_by), row.uploaded_at, url)


@dataclass(frozen=True)
class FolderView:
    """A resource folder with its files (``label`` repeats ``name``, XNAT's word)."""

    name: str
    label: str
    created_at: datetime
    files: list[FileView]


def present_folder(conn: HTTPConnection, folder: ResourceFolder) -> FolderView:
    """The folder with its files by name."""
    files = [present_file(conn, folder, f) for f in folder.files]
    return FolderView(folder.name, folder.name, folder.created_at, files)
