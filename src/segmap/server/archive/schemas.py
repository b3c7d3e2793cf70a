"""JSON shapes of the archive API (pydantic): the connection in, its view out, imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from segmap.server.db.archive import ARCHIVE_KINDS


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ConnectionIn(_In):
    """An archive to follow. ``password`` null or absent keeps the stored one when the URL
    and username are unchanged; ``""`` clears it."""

    kind: Literal["orthanc", "dicomweb"] = Field(
        description=f"one of {', '.join(ARCHIVE_KINDS)}", examples=["orthanc"]
    )
    url: str = Field(max_length=1024, examples=["http://pacs.example.org:8042"])
    username: str = Field(default="", max_length=255)
    password: str | None = Field(default=None, max_length=1024)
    push_masks: bool = False
    prefetch_images: bool = Field(
        default=False,
        description="orthanc: import image series when Orthanc reports them stable, so an "
        "annotation arriving later finds its scan already here",
    )
    filter: dict[str, Any] = Field(
        default_factory=dict, examples=[{"StudyDescription": "LIVER*", "Modality": "RTSTRUCT"}]
    )


class EventOut(_Out):
    """One series the follower imported, refused or pushed."""

    event: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    instances: int
    detail: str
    created_at: datetime


class ConnectionOut(_Out):
    """The connection (never its password) and what its follower did."""

    project: str
    kind: str
    url: str
    username: str
    has_password: bool
    push_masks: bool
    prefetch_images: bool
    filter: dict[str, Any]
    connected_by: str | None
    connected_at: datetime
    cursor: str | None
    last_contact_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_import_at: datetime | None
    imported: int
    refused: int
    pushed: int
    recent: list[EventOut]


class TestOut(BaseModel):
    """The answer of "Test connection": ``ok``, and what is wrong in words."""

    ok: bool
    problem: str | None
    message: str


class ImportIn(_In):
    """Studies and/or series (their UIDs) to import now."""

    studies: list[str] = Field(default_factory=list, max_length=1000)
    series: list[str] = Field(default_factory=list, max_length=1000)


class ImportOut(_Out):
    """An import asked for by hand, with its progress."""

    id: int
    project: str
    state: str
    studies: list[str]
    series: list[str]
    progress: float
    stage: str
    imported: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    url: str
