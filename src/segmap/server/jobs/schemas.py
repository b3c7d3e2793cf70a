"""JSON shapes of the jobs API (pydantic); ``JobOut`` reads a ``presenters.JobView``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from segmap.server.names import MAX_ID, looks_numeric, numeric_id

# SESSION/LABEL: a StudyInstanceUID (64) or id, "/", a collection label (255 bytes).
_MAX_COLLECTION_REF = 400


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
    """What to convert: one collection (its id or ``SESSION/LABEL``), or every collection
    of the project when ``collection`` is absent or null.

    An empty ``collection`` (``""``, spaces) is refused (422): it is a form left blank or
    a bug in a script, and reading it as "all" would start a conversion of everything.
    """

    model_config = ConfigDict(extra="forbid")

    collection: int | str | None = Field(
        default=None,
        examples=[12, "1.2.840.113619.2.55.3/liver-rois"],
        description="ROI collection id or SESSION/LABEL; absent or null converts every "
        'collection of the project; "" is refused',
    )

    @field_validator("collection", mode="before")
    @classmethod
    def _not_a_flag(cls, value: object) -> object:
        # Before pydantic's own parsing, which would read JSON true as the id 1.
        if isinstance(value, bool):
            raise ValueError("give the collection's id or SESSION/LABEL, not true/false")
        return value

    @field_validator("collection")
    @classmethod
    def _one_collection(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return None
        if isinstance(value, int):
            if not 1 <= value <= MAX_ID:
                raise ValueError(f"collection ids are whole numbers from 1 to {MAX_ID}")
            return value
        if not value.strip():
            raise ValueError(
                "the collection is empty; give its id or SESSION/LABEL, or leave "
                "collection out (or null) to convert every collection"
            )
        if len(value) > _MAX_COLLECTION_REF:
            raise ValueError(f"the collection is longer than {_MAX_COLLECTION_REF} characters")
        text = value.strip()
        first = text.split("/", 1)[0]
        if looks_numeric(first) and numeric_id(first) is None:
            raise ValueError(
                f"{first[:40]!r} is not an id: ids are whole numbers from 1 to {MAX_ID}, "
                "written with the digits 0-9"
            )
        return value


class ConvertOut(BaseModel):
    """The jobs queued (a job already waiting for the same model and collection is reused)."""

    jobs: list[JobOut]
