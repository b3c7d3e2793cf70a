"""How a session, a scan, an ROI collection and a derived folder are shown, by the API and
by the pages alike.

One frozen value per resource, built from its row with the URLs taken from the routes
(:func:`segmap.server.web.urls.path_for`). The API's ``...Out`` shapes read these values
(``from_attributes``); the templates read the same values and the ``..._text`` ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from starlette.requests import HTTPConnection

from segmap.server.db.imaging import (
    DerivedFolder,
    ImagingSession,
    RoiCollection,
    Scan,
    StoredVia,
)
from segmap.server.imaging.derived import download_name
from segmap.server.imaging.lookup import sorted_scans
from segmap.server.registry.presenters import username
from segmap.server.web.pages import format_time
from segmap.server.web.urls import path_for

NONE_TEXT = "—"
# How the pages name each route a collection can arrive by (``StoredVia``).
STORED_VIA_TEXT = {
    StoredVia.UPLOAD: "upload",
    StoredVia.DICOMWEB: "DICOMweb",
    StoredVia.OHIF: "OHIF",
    StoredVia.ARCHIVE: "the lab's archive",
}


def scan_name(scan_id: int, series_number: int | None) -> str:
    """How pages name a scan: ``Scan 1 (series 3)``.

    The id is the one in the scan's URLs; the series number (DICOM SeriesNumber) is only
    shown beside it, as it is neither unique nor always present.
    """
    return f"Scan {scan_id}" + ("" if series_number is None else f" (series {series_number})")


def format_date(value: date | None) -> str:
    """``2024-01-02``, or a dash when unknown."""
    return value.isoformat() if value is not None else NONE_TEXT


@dataclass(frozen=True)
class ScanView:
    """An image series of a session. ``slice_count`` counts image frames stored."""

    id: int
    series_instance_uid: str
    modality: str
    description: str
    series_number: int | None
    slice_count: int
    frame_of_reference_uid: str | None

    @property
    def number_text(self) -> str:
        """The series number, '' when the series has none."""
        return "" if self.series_number is None else str(self.series_number)

    @property
    def name_text(self) -> str:
        """``Scan 1 (series 3)``: see :func:`scan_name`."""
        return scan_name(self.id, self.series_number)

    @property
    def modality_text(self) -> str:
        """The modality, a dash when unknown."""
        return self.modality or NONE_TEXT

    @property
    def description_text(self) -> str:
        """The series description, a dash when empty."""
        return self.description or NONE_TEXT


def present_scan(scan: Scan) -> ScanView:
    """The scan (it has no page or API address of its own beyond its session's)."""
    return ScanView(
        id=scan.id,
        series_instance_uid=scan.series_instance_uid,
        modality=scan.modality,
        description=scan.description,
        series_number=scan.series_number,
        slice_count=scan.slice_count,
        frame_of_reference_uid=scan.frame_of_reference_uid,
    )


@dataclass(frozen=True)
class ScanRef:
    """The scan an ROI collection is drawn on."""

    id: int
    series_instance_uid: str


@dataclass(frozen=True)
class CollectionView:
    """An ROI collection: type, the scan it is drawn on, region names, where to get it,
    and who stored it (``stored_by``, the same as ``uploaded_by``) by which route
    (``stored_via``, a :class:`StoredVia` value)."""

    id: int
    label: str
    type: str
    session: int
    scan: ScanRef
    scan_text: str
    referenced_series_uid: str
    sop_instance_uid: str
    region_names: list[str]
    size: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime
    stored_by: str | None
    stored_via: str
    url: str
    download: str

    @property
    def uploaded_at_text(self) -> str:
        """When it was uploaded, in UTC."""
        return format_time(self.uploaded_at)

    @property
    def stored_via_text(self) -> str:
        """``upload``, ``DICOMweb`` or ``OHIF``."""
        return STORED_VIA_TEXT[StoredVia(self.stored_via)]


def _scan_text(row: RoiCollection) -> str:
    scan = row.scan
    if scan is None:
        return row.referenced_series_uid or NONE_TEXT
    what = scan.description or scan.modality
    return scan_name(scan.id, scan.series_number) + (f", {what}" if what else "")


def present_collection(conn: HTTPConnection, project_id: str, row: RoiCollection) -> CollectionView:
    """The collection of a session of ``project_id``."""
    params: dict[str, str | int] = {
        "project": project_id,
        "session": row.session_id,
        "label": row.label,
    }
    return CollectionView(
        id=row.id,
        label=row.label,
        type=row.collection_type,
        session=row.session_id,
        scan=ScanRef(row.scan.id, row.scan.series_instance_uid),
        scan_text=_scan_text(row),
        referenced_series_uid=row.referenced_series_uid,
        sop_instance_uid=row.sop_instance_uid,
        region_names=row.names(),
        size=row.size,
        sha256=row.sha256,
        uploaded_by=username(row.uploaded_by),
        uploaded_at=row.uploaded_at,
        stored_by=username(row.uploaded_by),
        stored_via=row.stored_via,
        url=path_for(conn, "api_get_collection", **params),
        download=path_for(conn, "api_download_collection", **params),
    )


@dataclass(frozen=True)
class SessionView:
    """An imaging session (one study): subject (PatientID), date, scans, its addresses.

    ``collections`` is filled for the session's own page and API answer only.
    """

    id: int
    study_instance_uid: str
    label: str
    subject: str
    date: date | None
    description: str
    created_at: datetime
    scans: list[ScanView]
    url: str
    api_url: str
    collections: list[CollectionView] = field(default_factory=list)

    @property
    def subject_text(self) -> str:
        """The subject, a dash when unknown."""
        return self.subject or NONE_TEXT

    @property
    def date_text(self) -> str:
        """The study date, a dash when unknown."""
        return format_date(self.date)


def present_session(
    conn: HTTPConnection, session: ImagingSession, *, with_collections: bool = False
) -> SessionView:
    """The session with its scans in series order (and its collections when asked)."""
    params: dict[str, str | int] = {"project": session.project_id, "session": session.id}
    collections = (
        [present_collection(conn, session.project_id, c) for c in session.collections]
        if with_collections
        else []
    )
    return SessionView(
        id=session.id,
        study_instance_uid=session.study_instance_uid,
        label=session.label,
        subject=session.subject,
        date=session.study_date,
        description=session.study_description,
        created_at=session.created_at,
        scans=[present_scan(s) for s in sorted_scans(session)],
        url=path_for(conn, "session_page", **params),
        api_url=path_for(conn, "api_get_session", **params),
        collections=collections,
    )


@dataclass(frozen=True)
class DerivedFileView:
    """A file of a derived folder, where to download it and the name it downloads as."""

    name: str
    size: int
    sha256: str
    url: str
    download_name: str


@dataclass(frozen=True)
class DerivedFolderView:
    """A derived folder on a scan; ``label`` names the model that wrote it."""

    label: str
    model: str | None
    updated_at: datetime
    files: list[DerivedFileView]

    @property
    def updated_text(self) -> str:
        """When the folder was last written, in UTC."""
        return format_time(self.updated_at)

    def file(self, name: str) -> DerivedFileView | None:
        """The file of this name, if the folder holds one."""
        return next((f for f in self.files if f.name == name), None)


def present_derived_folder(
    conn: HTTPConnection, project_id: str, scan: Scan, folder: DerivedFolder
) -> DerivedFolderView:
    """A derived folder of ``scan`` (in a session of ``project_id``)."""

    def url(name: str) -> str:
        return path_for(
            conn,
            "api_download_derived",
            project=project_id,
            session=scan.session_id,
            scan=scan.id,
            folder=folder.label,
            name=name,
        )

    session_label = scan.session.label
    files = [
        DerivedFileView(
            f.name,
            f.size,
            f.sha256,
            url(f.name),
            download_name(session_label, scan.id, folder.label, f.name),
        )
        for f in folder.files
    ]
    model = folder.model.label if folder.model is not None else None
    return DerivedFolderView(folder.label, model, folder.updated_at, files)
