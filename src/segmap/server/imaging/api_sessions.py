"""The sessions API under ``/api/v1``: DICOM upload, and reading sessions and scans.

Paths (a contract, see issue 5)::

    POST /projects/{p}/sessions                        DICOM files (multipart) or a zip
    GET  /projects/{p}/sessions                        sessions with their scans
    GET  /projects/{p}/sessions/{s}                    one session, scans and collections
    GET  /projects/{p}/sessions/{s}/scans/{scan}

``{s}`` is a session's numeric id or its StudyInstanceUID; ``{scan}`` a scan's id or its
SeriesInstanceUID. Bodies stream to disk; nothing is held in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from segmap.server.imaging import lookup
from segmap.server.imaging.presenters import present_scan, present_session
from segmap.server.imaging.schemas import (
    RejectedOut,
    ScanOut,
    SessionDetailOut,
    SessionOut,
    UploadAnswerOut,
    UploadedScanOut,
    UploadedSessionOut,
)
from segmap.server.imaging.upload import (
    CollectionSent,
    UploadResult,
    check_session_upload,
    listed_rejections,
    require_nonempty,
    session_body_sniff,
    session_part_problem,
    upload_dicom,
)
from segmap.server.upload_limits import UploadLimits
from segmap.server.web.auth import Principal
from segmap.server.web.deps import api_principal, get_database, get_db, get_settings, get_storage
from segmap.server.web.multipart import receive_files
from segmap.server.web.schemas import ErrorOut, not_found
from segmap.server.web.transfer import IncomingFile, Rejection, stage_body, watch_client
from segmap.server.web.urls import path_for, path_pattern

router = APIRouter(
    prefix="/api/v1", responses=not_found("project, session or scan"), tags=["sessions"]
)

SESSIONS = "/projects/{project}/sessions"
SESSION = SESSIONS + "/{session}"

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


def _raw_name(request: Request, name: str | None) -> str:
    if name:
        return name
    content_type = request.headers.get("content-type", "").lower()
    return "upload.zip" if "zip" in content_type else "upload.dcm"


def _where_collections_go(
    request: Request, project: str, sent: CollectionSent, principal: Principal | None
) -> Rejection:
    """A refused RTSTRUCT/SEG, with the exact collection upload to use for it.

    A browser (a log-in cookie, not a token) is told the page's way, in words; an API
    caller the request to make.
    """
    known = sent.session_id is not None
    if principal is not None and principal.via == "session":
        where = (
            "the session page of its images"
            if known
            else "the session page of its images, once they are uploaded"
        )
        return Rejection(
            sent.file,
            f"{sent.reason}; upload it as an ROI collection of type {sent.kind} with "
            f"Upload ROI Collection on {where}",
        )
    target: dict[str, str | int] = {"session": sent.session_id} if sent.session_id else {}
    put = path_pattern(request, "api_put_collection", project=project, **target)
    after = "" if known else " once the images it was drawn on are uploaded"
    return Rejection(
        sent.file,
        f"{sent.reason}; upload it on its own: PUT {put}?type={sent.kind} with the file as "
        f"the body{after}, or Upload ROI Collection on the session page",
    )


def _answer(request: Request, result: UploadResult, rejected: list[Rejection]) -> UploadAnswerOut:
    sessions = []
    for entry in result.sessions:
        s = entry.session
        scans = [
            UploadedScanOut(
                **ScanOut.model_validate(present_scan(u.scan)).model_dump(),
                added=u.added,
                already_stored=u.already_stored,
            )
            for u in entry.scans
        ]
        sessions.append(
            UploadedSessionOut(
                id=s.id,
                study_instance_uid=s.study_instance_uid,
                label=s.label,
                subject=s.subject,
                date=s.study_date,
                scans=scans,
                url=path_for(request, "session_page", project=s.project_id, session=s.id),
            )
        )
    return UploadAnswerOut(
        sessions=sessions,
        rejected=[RejectedOut(file=r.file, reason=r.reason) for r in listed_rejections(rejected)],
        rejected_count=len(rejected),
    )


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
    name="api_upload_sessions",
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
    limits = UploadLimits.from_settings(get_settings(request))
    limit = limits.max_file_bytes

    def prepare() -> None:
        with database.session() as db:
            check_session_upload(db, principal, project)

    await run_in_threadpool(prepare)
    content_type = request.headers.get("content-type", "")
    refused: list[Rejection] = []
    if content_type.lower().startswith("multipart/"):
        received = await receive_files(
            request.stream(), content_type, storage, limit, sniff=session_part_problem
        )
        incoming, refused = received.files, received.rejected
    else:
        raw_name = _raw_name(request, name)
        staged = await stage_body(request, storage, limit, sniff=session_body_sniff(raw_name))
        incoming = [IncomingFile(raw_name, staged)]

    def store(stop: Callable[[], None]) -> tuple[dict[str, Any], int]:
        with database.session(write=True) as db:
            result = upload_dicom(
                db,
                storage,
                principal,
                project,
                incoming,
                limits=limits,
                rejected=refused,
                stop=stop,
            )
            rejected = result.rejected + [
                _where_collections_go(request, project, c, principal) for c in result.collections
            ]
            require_nonempty(result, rejected)
            body = _answer(request, result, rejected).model_dump(mode="json")
            return body, 201 if result.added else 200

    # Unpacking and reading a large upload takes a while: stop if nobody waits for it.
    async with watch_client(request) as stop:
        body, status = await run_in_threadpool(store, stop)
    return JSONResponse(body, status_code=status)


@router.get(SESSIONS, response_model=list[SessionOut], name="api_list_sessions")
def list_sessions(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[SessionOut]:
    """The project's imaging sessions with their scans (members and collaborators too)."""
    return [
        SessionOut.model_validate(present_session(request, s))
        for s in lookup.list_sessions(db, principal, project)
    ]


@router.get(SESSION, response_model=SessionDetailOut, name="api_get_session")
def get_session(
    request: Request,
    project: str,
    session: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> SessionDetailOut:
    """One session with its ``scans`` and ``collections``."""
    found = lookup.get_session(db, principal, project, session)
    return SessionDetailOut.model_validate(present_session(request, found, with_collections=True))


@router.get(SESSION + "/scans/{scan}", response_model=ScanOut, name="api_get_scan")
def get_scan(
    project: str,
    session: str,
    scan: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ScanOut:
    """One scan of a session."""
    found = lookup.get_scan(db, principal, project, session, scan)
    return ScanOut.model_validate(present_scan(found))
