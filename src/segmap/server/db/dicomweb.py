"""Database tables of the DICOMweb index: studies, series and instances as QIDO sees them.

The index answers every QIDO query and locates every WADO retrieval without opening a
file. It is filled when an instance is stored (``segmap.server.dicomweb.index``) and
keyed to the imaging rows it describes:

- a **study** row per imaging session (``session_id``);
- a **series** row per scan (``scan_id``), and one per RTSTRUCT/SEG series (those are
  instances of a series of their own, not of the scan they are drawn on: ``scan_id`` is
  NULL there);
- an **instance** row per stored image instance (``instance_id``), ROI collection
  (``collection_id``) or derived DICOM SEG of a conversion (``derived_folder_id``: the
  mask as a series of its own, so a viewer shows it over the scan).

Each row holds the attributes QIDO matches on at its level
(``segmap.server.dicomweb.levels.MATCHABLE``) as plain columns — text as stored, dates
``YYYYMMDD``, times normalised by ``segmap.server.dicomweb.query.normalise_time``,
numbers as integers, NULL when absent — and the level's record as DICOM JSON
(``dicomjson.level_record``). Instance rows add what retrieval needs: the storage key,
the transfer syntax, the frame index (``segmap.imaging.frame_index.FrameIndex.to_bytes``)
or why there is none, and the instance's full DICOM JSON with Bulk Data URIs relative to
the instance. ``project_id`` is on every row, so no query can reach another project's.

Revision ``migrations/versions/0007_dicomweb_index.py`` creates these tables;
``0008_derived_seg_index`` adds ``derived_folder_id``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from segmap.server.db.base import Base
from segmap.server.db.imaging import UID_LEN

DATE_LEN = 8  # YYYYMMDD
TIME_LEN = 13  # HHMMSS.ffffff


class DicomwebStudy(Base):
    """The QIDO study of an imaging session, from the first instance indexed into it."""

    __tablename__ = "dicomweb_studies"
    __table_args__ = (UniqueConstraint("project_id", "study_instance_uid"),)

    session_id: Mapped[int] = mapped_column(
        ForeignKey("imaging_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LEN))
    patient_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    patient_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    accession_number: Mapped[str | None] = mapped_column(Text, nullable=True)
    study_date: Mapped[str | None] = mapped_column(String(DATE_LEN), nullable=True)
    study_time: Mapped[str | None] = mapped_column(String(TIME_LEN), nullable=True)
    referring_physician_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    study_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    study_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    patient_birth_date: Mapped[str | None] = mapped_column(String(DATE_LEN), nullable=True)
    patient_sex: Mapped[str | None] = mapped_column(Text, nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DicomwebSeries(Base):
    """A QIDO series: a scan's, or an ROI collection's own series (``scan_id`` NULL)."""

    __tablename__ = "dicomweb_series"
    __table_args__ = (UniqueConstraint("session_id", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    session_id: Mapped[int] = mapped_column(
        ForeignKey("dicomweb_studies.session_id", ondelete="CASCADE"), index=True
    )
    scan_id: Mapped[int | None] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), nullable=True, index=True
    )
    series_instance_uid: Mapped[str] = mapped_column(String(UID_LEN), index=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    series_date: Mapped[str | None] = mapped_column(String(DATE_LEN), nullable=True)
    series_time: Mapped[str | None] = mapped_column(String(TIME_LEN), nullable=True)
    pps_start_date: Mapped[str | None] = mapped_column(String(DATE_LEN), nullable=True)
    pps_start_time: Mapped[str | None] = mapped_column(String(TIME_LEN), nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DicomwebInstance(Base):
    """A stored instance as WADO serves it: an image's or an ROI collection's file.

    ``frame_index`` is NULL when the instance has no frames to serve, and
    ``frames_refusal`` then says why (no Pixel Data, a deflated file, …).
    ``metadata_json`` is the instance's DICOM JSON with each ``BulkDataURI`` written as
    its bulk path alone (``7FE00010``; see ``dicomweb.stored_metadata``); NULL when it
    could not be made (the route then builds it from the file). Both large columns are
    deferred: searches never load them.
    """

    __tablename__ = "dicomweb_instances"
    __table_args__ = (UniqueConstraint("project_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    series_id: Mapped[int] = mapped_column(
        ForeignKey("dicomweb_series.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("roi_collections.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    # The DICOM SEG a conversion wrote into a scan's derived folder (revision 0008).
    derived_folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("derived_folders.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LEN))
    sop_class_uid: Mapped[str | None] = mapped_column(String(UID_LEN), nullable=True)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(UID_LEN))
    storage_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    number_of_frames: Mapped[int] = mapped_column(Integer, default=1)
    frame_index: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    frames_refusal: Mapped[str | None] = mapped_column(Text, nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metadata_json: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
