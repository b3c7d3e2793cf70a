"""JSON shapes of the imaging API (pydantic): sessions, scans, ROI collections, derived files.

The ``...Out`` shapes of resources read their values from the presenters
(``from_attributes``), so the API and the pages show a row the same way.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from segmap.server.db.imaging import StoredVia


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ScanOut(_Out):
    """An image series of a session. ``slice_count`` counts image frames stored."""

    id: int
    series_instance_uid: str
    modality: str
    description: str
    series_number: int | None
    slice_count: int
    frame_of_reference_uid: str | None


class UploadedScanOut(ScanOut):
    """A scan touched by an upload: instances newly stored and ones it already held."""

    added: int
    already_stored: int


class ScanRefOut(_Out):
    """The scan an ROI collection is drawn on."""

    id: int
    series_instance_uid: str


class CollectionOut(_Out):
    """An ROI collection: its type, the scan it references and its region names."""

    id: int
    label: str
    type: str
    session: int
    scan: ScanRefOut
    referenced_series_uid: str
    sop_instance_uid: str
    region_names: list[str]
    size: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime
    stored_by: str | None = Field(description="Who stored it (the same as uploaded_by).")
    stored_via: StoredVia = Field(
        description="How it was stored: upload (REST API or page), dicomweb (STOW-RS by a "
        "client) or ohif (STOW-RS from the viewer segmap serves)."
    )
    download: str


class SessionOut(_Out):
    """An imaging session (one study): subject (PatientID), date, and its scans."""

    id: int
    study_instance_uid: str
    label: str
    subject: str
    date: date | None
    description: str
    created_at: datetime
    scans: list[ScanOut]


class SessionDetailOut(SessionOut):
    """A session with its ROI collections."""

    collections: list[CollectionOut]


class UploadedSessionOut(BaseModel):
    """A session touched by an upload."""

    id: int
    study_instance_uid: str
    label: str
    subject: str
    date: date | None
    scans: list[UploadedScanOut]
    url: str
    """The session's page."""


class RejectedOut(BaseModel):
    """A file of the upload that was not stored, and why."""

    file: str
    reason: str


class UploadAnswerOut(BaseModel):
    """What an upload stored, by session and scan, and which files it refused."""

    sessions: list[UploadedSessionOut]
    rejected: list[RejectedOut] = Field(
        description="the first 100 refused files, in upload order; rejected_count has them all"
    )
    rejected_count: int


class DerivedFileOut(_Out):
    """A file of a derived folder."""

    name: str
    size: int
    sha256: str


class DerivedFolderOut(_Out):
    """A derived folder on a scan; ``label`` names the model that wrote it."""

    label: str
    model: str | None
    updated_at: datetime
    files: list[DerivedFileOut]
