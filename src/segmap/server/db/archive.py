"""Database tables of the archive connection: one lab archive a project follows.

- ``archive_connections``: at most one per project — the archive's kind (``orthanc`` or
  ``dicomweb``), URL, credentials (the password encrypted, see
  ``segmap.server.archive.secrets``), ``push_masks``, ``prefetch_images``, the import
  filter, the account the follower acts as, and the follower's state: its cursor
  (Orthanc's last ``/changes`` sequence number, or the last SeriesDate a DICOMweb poll
  saw), last contact, last error; and which service follows it now (``follower``, with
  ``follower_lease_expires_at``: of several services on one database, one follows).
  ``generation`` goes up with each change of the settings, so a running follower knows
  to start again with them.
- ``archive_events``: what happened, one row per series: an annotation series
  ``imported``, ``refused`` (with why) or ``skipped`` (the filter; a SEG segmap made),
  a derived SEG ``pushed``. The follower reads
  them so a series is imported once and segmap's own pushed SEGs are never imported.
- ``archive_imports``: imports asked for by hand (API or CLI), run as jobs with progress.
  While one runs it is leased like a job (``runner`` names the service or command that
  claimed it, ``lease_expires_at`` until when, ``attempts`` how often it was started), so
  services sharing the database run each once (``segmap.server.archive.import_leases``).

Revision ``migrations/versions/0009_archive.py`` creates these tables;
``0011_archive_import_leases.py`` adds the lease to ``archive_imports``;
``0012_archive_follower_lease.py`` the follower's lease to ``archive_connections``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from segmap.server.db.base import Base, UTCDateTime, utcnow
from segmap.server.db.imaging import UID_LEN

KIND_ORTHANC = "orthanc"
KIND_DICOMWEB = "dicomweb"
ARCHIVE_KINDS = (KIND_ORTHANC, KIND_DICOMWEB)

EVENT_IMPORTED = "imported"
EVENT_REFUSED = "refused"
EVENT_PUSHED = "pushed"
EVENT_SKIPPED = "skipped"  # filtered out, or a SEG segmap made; forgotten when the filter changes

IMPORT_QUEUED = "queued"
IMPORT_RUNNING = "running"
IMPORT_SUCCEEDED = "succeeded"
IMPORT_FAILED = "failed"


class ArchiveConnection(Base):
    """The archive a project follows (see module doc); ``project_id`` is the key."""

    __tablename__ = "archive_connections"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(1024))
    username: Mapped[str] = mapped_column(String(255), default="")
    password_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    push_masks: Mapped[bool] = mapped_column(Boolean, default=False)
    prefetch_images: Mapped[bool] = mapped_column(Boolean, default=False)
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    connected_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    generation: Mapped[int] = mapped_column(Integer, default=1)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cursor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_import_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The service following the archive now, and until when (segmap.server.archive.follow_lease).
    follower: Mapped[str | None] = mapped_column(String(64), nullable=True)
    follower_lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ArchiveEvent(Base):
    """One series imported, refused or pushed (unique per project, kind and series)."""

    __tablename__ = "archive_events"
    __table_args__ = (UniqueConstraint("project_id", "event", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(16))
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LEN), default="")
    series_instance_uid: Mapped[str] = mapped_column(String(UID_LEN))
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LEN), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    instances: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ArchiveImport(Base):
    """An import asked for by hand: studies and/or series to pull now, with progress."""

    __tablename__ = "archive_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default=IMPORT_QUEUED, index=True)
    studies: Mapped[list[str]] = mapped_column(JSON, default=list)
    series: Mapped[list[str]] = mapped_column(JSON, default=list)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(255), default="")
    imported: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
