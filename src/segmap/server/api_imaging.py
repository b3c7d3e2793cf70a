"""REST API of imaging sessions, ROI collections and derived resources (under ``/api/v1``).

Paths (a contract, see issue 5)::

    POST /projects/{p}/sessions                        DICOM files (multipart) or a zip
    GET  /projects/{p}/sessions                        sessions with their scans
    GET  /projects/{p}/sessions/{s}                    one session, scans and collections
    GET  /projects/{p}/sessions/{s}/scans/{scan}
    PUT  /projects/{p}/sessions/{s}/collections/{label}?type=RTSTRUCT|SEG[&overwrite=true]
    GET  /projects/{p}/sessions/{s}/collections[/{label}[/file]]
    GET  /projects/{p}/sessions/{s}/scans/{scan}/resources
    GET  /projects/{p}/sessions/{s}/scans/{scan}/resources/{folder}/files/{name}

``{s}`` is a session's numeric id or its StudyInstanceUID; ``{scan}`` a scan's id or its
SeriesInstanceUID. Bodies stream to disk; nothing is held in memory whole.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from segmap.server import services
from segmap.server.api_schemas import ErrorOut
from segmap.server.auth import Principal
from segmap.server.db.imaging import DerivedFolder, ImagingSession, RoiCollection, Scan
from segmap.server.deps import api_principal, get_database, get_db, get_settings, get_storage
from segmap.server.multipart_stream import receive_files
from segmap.server.services.imaging import (
    IncomingFile,
    Rejection,
    SessionUpload,
    UploadLimits,
    UploadResult,
    require_nonempty,
    sorted_scans,
)
from segmap.server.storage import LocalStorage, StagedFile
from segmap.server.transfer import (
    download_response,
    guess_media_type,
    receive_body,
    refuse_declared_oversize,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Not logged in"},
    403: {"model": ErrorOut, "description": "Not allowed for your role"},
    404: {"model": ErrorOut, "description": "No such project, session, scan or file"},
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS, tags=["sessions"])

PROJECT = "/projects/{project}"
SESSIONS = PROJECT + "/sessions"
SESSION = SESSIONS + "/{session}"
SCAN = SESSION + "/scans/{scan}"
COLLECTION = SESSION + "/collections/{label}"


# --------------------------------------------------------------------------- JSON shapes


class ScanOut(BaseModel):
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


class ScanRefOut(BaseModel):
    """The scan an ROI collection is drawn on."""

    id: int
    series_instance_uid: str


class CollectionOut(BaseModel):
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
    download: str


class SessionOut(BaseModel):
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


class RejectedOut(BaseModel):
    """A file of the upload that was not stored, and why."""

    file: str
    reason: str


class UploadAnswerOut(BaseModel):
    """What an upload stored, by session and scan, and which files it refused."""

    sessions: list[UploadedSessionOut]
    rejected: list[RejectedOut]


class DerivedFileOut(BaseModel):
    """A file of a derived folder."""

    name: str
    size: int
    sha256: str


class DerivedFolderOut(BaseModel):
    """A derived folder on a scan; ``label`` names the model that wrote it."""

    label: str
    model: str | None
    updated_at: datetime
    files: list[DerivedFileOut]


def scan_out(scan: Scan) -> ScanOut:
    """JSON of a scan."""
    return ScanOut(
        id=scan.id,
        series_instance_uid=scan.series_instance_uid,
        modality=scan.modality,
        description=scan.description,
        series_number=scan.series_number,
        slice_count=scan.slice_count,
        frame_of_reference_uid=scan.frame_of_reference_uid,
    )


def collection_url(project: str, session_id: int, label: str) -> str:
    """API URL of a collection's metadata (``/file`` below it downloads the file)."""
    return (
        f"/api/v1/projects/{quote(project, safe='')}/sessions/{session_id}/collections/"
        f"{quote(label, safe='')}"
    )


def collection_out(project: str, row: RoiCollection) -> CollectionOut:
    """JSON of an ROI collection."""
    return CollectionOut(
        id=row.id,
        label=row.label,
        type=row.collection_type,
        session=row.session_id,
        scan=ScanRefOut(id=row.scan.id, series_instance_uid=row.scan.series_instance_uid),
        referenced_series_uid=row.referenced_series_uid,
        sop_instance_uid=row.sop_instance_uid,
        region_names=row.names(),
        size=row.size,
        sha256=row.sha256,
        uploaded_by=row.uploaded_by.username if row.uploaded_by else None,
        uploaded_at=row.uploaded_at,
        download=collection_url(project, row.session_id, row.label) + "/file",
    )


def session_out(session: ImagingSession) -> SessionOut:
    """JSON of a session with its scans."""
    return SessionOut(
        id=session.id,
        study_instance_uid=session.study_instance_uid,
        label=session.label,
        subject=session.subject,
        date=session.study_date,
        description=session.study_description,
        created_at=session.created_at,
        scans=[scan_out(s) for s in sorted_scans(session)],
    )


def session_detail_out(project: str, session: ImagingSession) -> SessionDetailOut:
    """JSON of a session with its scans and collections."""
    return SessionDetailOut(
        **session_out(session).model_dump(),
        collections=[collection_out(project, c) for c in session.collections],
    )


def _uploaded_session_out(entry: SessionUpload) -> UploadedSessionOut:
    s = entry.session
    return UploadedSessionOut(
        id=s.id,
        study_instance_uid=s.study_instance_uid,
        label=s.label,
        subject=s.subject,
        date=s.study_date,
        scans=[
            UploadedScanOut(
                **scan_out(u.scan).model_dump(), added=u.added, already_stored=u.already_stored
            )
            for u in entry.scans
        ],
    )


def upload_answer(result: UploadResult) -> UploadAnswerOut:
    """JSON of an upload's result."""
    return UploadAnswerOut(
        sessions=[_uploaded_session_out(e) for e in result.sessions],
        rejected=[RejectedOut(file=r.file, reason=r.reason) for r in result.rejected],
    )


def derived_folder_out(folder: DerivedFolder) -> DerivedFolderOut:
    """JSON of a derived folder with its files."""
    return DerivedFolderOut(
        label=folder.label,
        model=folder.model.label if folder.model is not None else None,
        updated_at=folder.updated_at,
        files=[DerivedFileOut(name=f.name, size=f.size, sha256=f.sha256) for f in folder.files],
    )


# --------------------------------------------------------------------------- receiving


async def _stage_body(request: Request, storage: LocalStorage, limit: int) -> StagedFile:
    """Stream the raw request body into one staging file."""
    refuse_declared_oversize(request, limit)
    writer = await run_in_threadpool(storage.stage, limit)
    tail = await receive_body(request, writer)

    def finish() -> StagedFile:
        try:
            writer.write(tail)
            return writer.finish()
        except BaseException:
            writer.discard()
            raise

    return await run_in_threadpool(finish)


def _raw_name(request: Request, name: str | None) -> str:
    if name:
        return name
    content_type = request.headers.get("content-type", "").lower()
    return "upload.zip" if "zip" in content_type else "upload.dcm"


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "DICOM files as multipart/form-data (any number of file parts, each a DICOM "
            "file or a zip of them), or one zip (application/zip) or one DICOM file "
            "(application/dicom) as the raw body."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/dicom": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    SESSIONS,
    status_code=201,
    response_model=UploadAnswerOut,
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {"model": UploadAnswerOut, "description": "Nothing new was stored"},
        413: {"model": ErrorOut, "description": "Larger than the upload limit"},
        422: {"model": ErrorOut, "description": "No file of the upload could be stored"},
    },
)
async def upload_sessions(
    request: Request,
    project: str,
    name: str | None = Query(None, description="File name of a raw-body upload"),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Upload DICOM images; they are grouped into sessions (study) and scans (series).

    201 when new instances were stored, 200 when every file was stored already, 422 when
    no file could be stored. Refused files are listed in ``rejected`` with a reason; the
    rest of the upload is kept. Owners and site admins.
    """
    database = get_database(request)
    storage = get_storage(request)
    limit = get_settings(request).max_upload_bytes

    def prepare() -> None:
        with database.session() as db:
            services.imaging.check_session_upload(db, principal, project)

    await run_in_threadpool(prepare)
    content_type = request.headers.get("content-type", "")
    refused: list[Rejection] = []
    if content_type.lower().startswith("multipart/"):
        received = await receive_files(request.stream(), content_type, storage, limit)
        incoming, refused = received.files, received.rejected
    else:
        staged = await _stage_body(request, storage, limit)
        incoming = [IncomingFile(_raw_name(request, name), staged)]

    def store() -> tuple[dict[str, Any], int]:
        with database.session(write=True) as db:
            result = services.upload_dicom(
                db,
                storage,
                principal,
                project,
                incoming,
                limits=UploadLimits.for_upload_limit(limit),
                rejected=refused,
            )
            require_nonempty(result)
            body = upload_answer(result).model_dump(mode="json")
            return body, 201 if result.added else 200

    body, status = await run_in_threadpool(store)
    return JSONResponse(body, status_code=status)


# --------------------------------------------------------------------------- reading sessions


@router.get(SESSIONS, response_model=list[SessionOut])
def list_sessions(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[SessionOut]:
    """The project's imaging sessions with their scans (members and collaborators too)."""
    return [session_out(s) for s in services.list_sessions(db, principal, project)]


@router.get(SESSION, response_model=SessionDetailOut)
def get_session(
    project: str,
    session: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> SessionDetailOut:
    """One session with its ``scans`` and ``collections``."""
    found = services.get_session(db, principal, project, session)
    return session_detail_out(found.project_id, found)


@router.get(SCAN, response_model=ScanOut)
def get_scan(
    project: str,
    session: str,
    scan: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ScanOut:
    """One scan of a session."""
    return scan_out(services.get_scan(db, principal, project, session, scan))


# --------------------------------------------------------------------------- ROI collections


_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The RTSTRUCT or SEG file's bytes, sent as the raw request body.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put(
    COLLECTION,
    status_code=201,
    response_model=CollectionOut,
    openapi_extra=_RAW_BODY,
    responses={
        200: {"model": CollectionOut, "description": "An existing collection was replaced"},
        409: {"model": ErrorOut, "description": "The label exists and overwrite is not true"},
        413: {"model": ErrorOut, "description": "Larger than the upload limit"},
        422: {
            "model": ErrorOut,
            "description": "Wrong type, unreadable, or references no scan of the session",
        },
    },
)
async def put_collection(
    request: Request,
    project: str,
    session: str,
    label: str,
    collection_type: str = Query(..., alias="type", description="RTSTRUCT or SEG"),
    overwrite: bool = Query(False, description="Replace a collection with this label"),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Upload an ROI collection with the raw body, as XNAT's ROI collection upload does.

    201 when new, 200 when it replaced one (``overwrite=true``). The file must be the
    declared type and reference a scan of the session (422 names the series it
    references otherwise). Owners and site admins.
    """
    database = get_database(request)
    storage = get_storage(request)
    limit = get_settings(request).max_upload_bytes

    def prepare() -> None:
        with database.session() as db:
            services.imaging.prepare_collection_upload(
                db, principal, project, session, label, collection_type, overwrite
            )

    await run_in_threadpool(prepare)
    staged = await _stage_body(request, storage, limit)

    def store() -> tuple[dict[str, Any], bool]:
        with database.session(write=True) as db:
            saved = services.imaging.store_staged_collection(
                db, storage, principal, project, session, label, collection_type, staged,
                overwrite,
            )
            db.refresh(saved.collection)
            out = collection_out(saved.collection.session.project_id, saved.collection)
            return out.model_dump(mode="json"), saved.created

    body, created = await run_in_threadpool(store)
    return JSONResponse(body, status_code=201 if created else 200)


@router.get(SESSION + "/collections", response_model=list[CollectionOut])
def list_collections(
    project: str,
    session: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[CollectionOut]:
    """The session's ROI collections."""
    rows = services.list_collections(db, principal, project, session)
    return [collection_out(project, r) for r in rows]


@router.get(COLLECTION, response_model=CollectionOut)
def get_collection(
    project: str,
    session: str,
    label: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> CollectionOut:
    """An ROI collection's metadata: type, referenced scan, region names, checksum."""
    row = services.get_collection(db, principal, project, session, label)
    return collection_out(row.session.project_id, row)


@router.get(
    COLLECTION + "/file",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/dicom": {}}, "description": "The file's bytes"}},
)
def download_collection(
    project: str,
    session: str,
    label: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> StreamingResponse:
    """Download the collection's file exactly as uploaded (members and collaborators too)."""
    row, handle = services.open_collection(db, storage, principal, project, session, label)
    return download_response(
        f"{row.label}.dcm", row.size, row.sha256, handle, "application/dicom"
    )


# --------------------------------------------------------------------------- derived resources


@router.get(SCAN + "/resources", response_model=list[DerivedFolderOut])
def list_resources(
    project: str,
    session: str,
    scan: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[DerivedFolderOut]:
    """The scan's derived folders (one per model), each with ``label`` and ``files``."""
    folders = services.list_derived_resources(db, principal, project, session, scan)
    return [derived_folder_out(f) for f in folders]


@router.get(
    SCAN + "/resources/{folder}/files/{name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The bytes"}},
)
def download_resource(
    project: str,
    session: str,
    scan: str,
    folder: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> StreamingResponse:
    """Download a derived file (mask, resampled image, report, preview)."""
    row, handle = services.open_derived_file(
        db, storage, principal, project, session, scan, folder, name
    )
    return download_response(
        row.name, row.size, row.sha256, handle, guess_media_type(row.name)
    )
