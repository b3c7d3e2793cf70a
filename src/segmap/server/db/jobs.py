"""The job table: one conversion of one ROI collection for one model.

The row is the truth about a job. ``state`` moves queued -> running -> succeeded or
failed. A running job is leased: ``runner`` names the service process that claimed it
and ``lease_expires_at`` says until when; the runner renews the lease while the job runs,
and once it has expired (its service died) any service may claim the job again
(``attempts`` counts how often it was started). Revisions ``0003_jobs`` and
``0004_job_leases`` create the table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from segmap.server.db.accounts import User
from segmap.server.db.base import Base, UTCDateTime, utcnow
from segmap.server.db.imaging import RoiCollection
from segmap.server.db.registry import MLModel, Project

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_SUCCEEDED = "succeeded"
JOB_FAILED = "failed"
JOB_STATES = (JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED)


class Job(Base):
    """A conversion job.

    Attributes:
        state: queued, running, succeeded or failed.
        progress: fraction done, 0..1.
        stage: what the job is doing now, in words (``placing regions``).
        log: readable lines, oldest first.
        error: what went wrong, in words a user can act on (failed jobs only).
        attempts: how many times the job was started.
        runner: token of the job runner that holds the job (so a runner only finishes
            the jobs it still owns).
        lease_expires_at: while running, when the runner's claim lapses unless renewed.
        output_folder: label of the derived folder the job wrote (succeeded jobs).
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("roi_collections.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default=JOB_QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(128), default="")
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    output_folder: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    project: Mapped[Project] = relationship()
    model: Mapped[MLModel] = relationship()
    collection: Mapped[RoiCollection] = relationship()
    created_by: Mapped[User | None] = relationship()
