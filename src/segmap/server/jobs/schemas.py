"""JSON shapes of the jobs API (pydantic); ``JobOut`` reads a ``presenters.JobView``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class JobOut(BaseModel):
    """A conversion job. ``progress`` is 0..1; ``error`` says what to do when it failed."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    project: str
    model: str
    model_id: int
    collection: str
    collection_id: int
    collection_type: str
    session: int
    session_label: str
    scan: int
    state: str = Field(description="queued, running, succeeded or failed")
    progress: float
    stage: str
    error: str | None
    attempts: int
    trigger: str = Field(description="automation or manual")
    output_folder: str | None = Field(
        description="derived folder on the scan holding the outputs (succeeded jobs)"
    )
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    runner: str | None = Field(
        description="while running: the service process that holds the job's lease (its "
        "host and process id for site admins, a random label for others)"
    )
    lease_expires_at: datetime | None = Field(
        description="while running: when another service may take the job over unless "
        "its runner renews the lease"
    )
    url: str
    resources_url: str
    model_url: str = Field(description="the model's page")
    session_url: str = Field(description="the page of the collection's session")


class JobDetailOut(JobOut):
    """A job with its log (readable lines, oldest first)."""

    log: str


class ConvertIn(BaseModel):
    """What to convert: one collection (its id or ``SESSION/LABEL``), or all when absent."""

    model_config = ConfigDict(extra="forbid")

    collection: int | str | None = Field(
        default=None,
        examples=[12, "1.2.840.113619.2.55.3/liver-rois"],
        description="ROI collection id or SESSION/LABEL; omit to convert every collection",
    )


class ConvertOut(BaseModel):
    """The jobs queued (a job already waiting for the same model and collection is reused)."""

    jobs: list[JobOut]
