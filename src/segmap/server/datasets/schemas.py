"""JSON shapes of the datasets API (pydantic); ``DatasetOut`` reads a ``DatasetView``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from segmap.datasets.folds import DEFAULT_FOLDS, DEFAULT_SEED
from segmap.datasets.freeze import DEFAULT_ID


class DatasetIn(BaseModel):
    """A dataset to freeze from the model's successful conversions."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        examples=["Abdomen"],
        description="1 to 64 letters, digits, '_' or '-'; unique per model (any case)",
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        examples=[{"subject": ["PAT0*"], "annotator": "carol"}],
        description="keep only conversions matching: subject (PatientID), session (label "
        "or StudyInstanceUID), collection (label or annotation UID), annotator (who "
        "uploaded the collection); each a string or list of shell patterns; omit for all",
    )
    resampled: bool = Field(
        default=False,
        description="pairs at the model's voxel spacing instead of each scan's own grid",
    )
    folds: int = Field(default=DEFAULT_FOLDS, description="cross-validation folds (2-100)")
    seed: int = Field(default=DEFAULT_SEED, description="seed of the fold shuffle")
    dataset_id: int = Field(
        default=DEFAULT_ID, description="nnU-Net's dataset number, 1-999 (Dataset{NNN}_{name})"
    )


class DatasetOut(BaseModel):
    """A dataset. ``state`` is queued, freezing, ready or failed; ``progress`` is 0..1."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    name: str
    project: str
    model: str
    model_id: int
    state: str = Field(description="queued, freezing, ready or failed")
    stage: str
    progress: float
    error: str | None = Field(description="why it failed, and what to do")
    attempts: int
    filter: dict[str, list[str]]
    resampled: bool
    folds: int
    seed: int
    dataset_id: int
    case_count: int | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str
    page_url: str
    download_urls: dict[str, str] = Field(
        description="per format (nnunet, monai, msd), the zip's URL (ready datasets)"
    )


class DatasetDetailOut(DatasetOut):
    """A dataset with, once ready, its manifest, its QA report and its QA pictures."""

    manifest: dict[str, Any] | None = Field(
        default=None, description="where every case came from (see docs/datasets.md)"
    )
    qa: dict[str, Any] | None = Field(default=None, description="the QA report")
    qa_plots: dict[str, str] | None = Field(
        default=None, description="label value -> URL of the region's volume picture (PNG)"
    )
