"""The datasets table: named, frozen training datasets of a model.

The row is the truth about a dataset. ``state`` moves queued -> freezing -> ready or
failed. While freezing, the row is leased like a job (``runner`` names the service that
claimed it, ``lease_expires_at`` until when); once the lease has expired (its service
died) any service may claim it again, and a graceful stop puts it back in the queue.
A ready dataset's manifest, QA report and its own links to every file live in storage
under ``store_key``. Revision ``0006_datasets`` creates the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from segmap.server.db.accounts import User
from segmap.server.db.base import Base, UTCDateTime, utcnow
from segmap.server.db.registry import MLModel, Project

DATASET_QUEUED = "queued"
DATASET_FREEZING = "freezing"
DATASET_READY = "ready"
DATASET_FAILED = "failed"
DATASET_STATES = (DATASET_QUEUED, DATASET_FREEZING, DATASET_READY, DATASET_FAILED)


class Dataset(Base):
    """A dataset of a model (``name`` unique per model, compared by ``name_key``).

    Attributes:
        filter: the case filter as JSON (``{"subject": ["PAT0*"], ...}``; empty: all).
        resampled: image/mask pairs at the model's spacing rather than each scan's grid.
        folds, seed: cross-validation folds grouped by subject, and the shuffle's seed.
        nnunet_id: nnU-Net's dataset number (``Dataset{NNN}_{name}``).
        progress: fraction done while freezing, 0..1; ``stage`` says what it does, in words.
        error: why it failed, in words a user can act on (failed datasets only).
        attempts: how many times freezing was started.
        runner, lease_expires_at: the claim of the service freezing it (see module doc).
        case_count: how many cases it holds (ready datasets).
        store_key: storage prefix of its frozen store (ready datasets).
    """

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("model_id", "name_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=DATASET_QUEUED, index=True)
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resampled: Mapped[bool] = mapped_column(Boolean, default=False)
    folds: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    nnunet_id: Mapped[int] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(128), default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    case_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    store_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    project: Mapped[Project] = relationship()
    model: Mapped[MLModel] = relationship()
    created_by: Mapped[User | None] = relationship()
