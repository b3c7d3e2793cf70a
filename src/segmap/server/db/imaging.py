"""Database tables of imaging data: sessions, scans, instances, ROI collections, derived files.

The classes share ``db.base.Base`` (one metadata, one migration history); revision
``migrations/versions/0002_imaging.py`` creates these tables and
``test_server_migrations`` checks the two agree.

Words as XNAT uses them: a **session** is one imaging study (StudyInstanceUID) of a
subject; a **scan** is one image series (SeriesInstanceUID) of it; an **ROI collection**
is an RTSTRUCT or SEG drawn on one scan; a **derived resource** is a folder of files a
job wrote onto a scan (its label names the model).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from segmap.imaging.instance_check import MAX_UID_LENGTH
from segmap.server.db.accounts import User
from segmap.server.db.base import Base, UTCDateTime, utcnow
from segmap.server.db.registry import MLModel, Project

UID_LEN = MAX_UID_LENGTH


class ImagingSession(Base):
    """An imaging session: one DICOM study in a project (StudyInstanceUID unique per project).

    ``subject`` is the PatientID; ``study_date`` the StudyDate (None when absent or not a
    valid date); ``label`` is what the pages show.
    """

    __tablename__ = "imaging_sessions"
    __table_args__ = (UniqueConstraint("project_id", "study_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LEN))
    label: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(64), default="")
    study_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    study_description: Mapped[str] = mapped_column(String(255), default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    project: Mapped[Project] = relationship()
    created_by: Mapped[User | None] = relationship()
    scans: Mapped[list[Scan]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Scan.id",
    )
    collections: Mapped[list[RoiCollection]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="RoiCollection.label_key",
    )


class Scan(Base):
    """An image series of a session (SeriesInstanceUID unique per session).

    ``slice_count`` is the number of image frames stored (one per single-frame instance,
    NumberOfFrames for multi-frame ones).
    """

    __tablename__ = "scans"
    __table_args__ = (UniqueConstraint("session_id", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("imaging_sessions.id", ondelete="CASCADE"), index=True
    )
    series_instance_uid: Mapped[str] = mapped_column(String(UID_LEN))
    modality: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame_of_reference_uid: Mapped[str | None] = mapped_column(String(UID_LEN), nullable=True)
    slice_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[ImagingSession] = relationship(back_populates="scans")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="scan", cascade="all, delete-orphan", passive_deletes=True
    )
    derived_folders: Mapped[list[DerivedFolder]] = relationship(
        back_populates="scan",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DerivedFolder.label_key",
    )


class Instance(Base):
    """One stored DICOM file of a scan. SOPInstanceUID is unique within a project.

    ``project_id`` repeats the session's project so the database itself refuses a second
    copy of an instance, even from two uploads racing each other.
    """

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("project_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LEN))
    sop_class_uid: Mapped[str] = mapped_column(String(UID_LEN), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    scan: Mapped[Scan] = relationship(back_populates="instances")


class StoredVia(StrEnum):
    """How an ROI collection reached segmap (``roi_collections.stored_via``).

    ``upload``: the REST API or the session page's Upload ROI Collection (the page calls
    the API); ``dicomweb``: STOW-RS by a DICOMweb client; ``ohif``: STOW-RS from the OHIF
    viewer segmap serves (the rule is ``viewer.provenance``); ``archive``: imported from
    the project's connected archive (``server.archive``), followed or by hand.
    """

    UPLOAD = "upload"
    DICOMWEB = "dicomweb"
    OHIF = "ohif"
    ARCHIVE = "archive"


class RoiCollection(Base):
    """An ROI collection (RTSTRUCT or SEG) of a session, drawn on one of its scans.

    ``label`` is unique per session (compared by ``label_key``); ``collection_type`` is a
    ``segmap.imaging.sop_classes.CollectionKind`` value. ``region_names`` lists
    the RTSTRUCT ROI names or SEG segment labels in file order (JSON list of strings).
    ``referenced_series_uid`` is the series the file references; ``scan_id`` the scan of
    the session that series is. ``uploaded_by`` is who stored it and ``stored_via``
    (a :class:`StoredVia` value) how; a replacement records its own.
    """

    __tablename__ = "roi_collections"
    __table_args__ = (
        UniqueConstraint("session_id", "label_key"),
        CheckConstraint(
            "stored_via IN ({})".format(", ".join(f"'{v.value}'" for v in StoredVia)),
            name="ck_roi_collections_stored_via",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("imaging_sessions.id", ondelete="CASCADE"), index=True
    )
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(255))
    label_key: Mapped[str] = mapped_column(String(255))
    collection_type: Mapped[str] = mapped_column(String(16))
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LEN), default="")
    referenced_series_uid: Mapped[str] = mapped_column(String(UID_LEN))
    region_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stored_via: Mapped[str] = mapped_column(
        String(16), default=StoredVia.UPLOAD.value, server_default=StoredVia.UPLOAD.value
    )

    session: Mapped[ImagingSession] = relationship(back_populates="collections")
    scan: Mapped[Scan] = relationship()
    uploaded_by: Mapped[User | None] = relationship()

    def names(self) -> list[str]:
        """``region_names`` as a list of strings, whatever the backend returned."""
        raw: Any = self.region_names or []
        return [str(n) for n in raw]


class DerivedFolder(Base):
    """A folder of derived files on a scan; ``label`` names the model that made it.

    Its files live in storage under ``storage_prefix`` (one version of the folder); a
    replacement writes a new version beside it and switches this row to it.
    ``model_id`` is the model the label names, when the writer said so.
    """

    __tablename__ = "derived_folders"
    __table_args__ = (UniqueConstraint("scan_id", "label_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(255))
    label_key: Mapped[str] = mapped_column(String(255))
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), nullable=True
    )
    storage_prefix: Mapped[str] = mapped_column(String(255), unique=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    scan: Mapped[Scan] = relationship(back_populates="derived_folders")
    model: Mapped[MLModel | None] = relationship()
    files: Mapped[list[DerivedFile]] = relationship(
        back_populates="folder",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DerivedFile.name_key",
    )


class DerivedFile(Base):
    """One file of a derived folder: name, size in bytes, SHA-256, storage key."""

    __tablename__ = "derived_files"
    __table_args__ = (UniqueConstraint("folder_id", "name_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(
        ForeignKey("derived_folders.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)

    folder: Mapped[DerivedFolder] = relationship(back_populates="files")
