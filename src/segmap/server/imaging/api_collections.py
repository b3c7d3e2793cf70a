"""The ROI collections and derived resources API under ``/api/v1``.

Paths (a contract, see issue 5)::

    PUT  /projects/{p}/sessions/{s}/collections/{label}?type=RTSTRUCT|SEG[&overwrite=true]
    GET  /projects/{p}/sessions/{s}/collections[/{label}[/file]]
    GET  /projects/{p}/sessions/{s}/scans/{scan}/resources
    GET  /projects/{p}/sessions/{s}/scans/{scan}/resources/{folder}/files/{name}

The collection upload is XNAT's: the raw file as the body. Storing one tells the app's
``ImagingEvents`` (automated models get their jobs).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from segmap.server.imaging import collections, derived, lookup
from segmap.server.imaging.collection_upload import (
    collection_body_sniff,
    prepare_collection_upload,
    store_staged_collection,
)
from segmap.server.imaging.events import imaging_events
from segmap.server.imaging.presenters import present_collection, present_derived_folder
from segmap.server.imaging.schemas import CollectionOut, DerivedFolderOut
from segmap.server.storage import LocalStorage
from segmap.server.upload_limits import UploadLimits
from segmap.server.web.auth import Principal
from segmap.server.web.deps import api_principal, get_database, get_db, get_settings, get_storage
from segmap.server.web.schemas import ErrorOut, not_found, raw_body
from segmap.server.web.transfer import download_response, guess_media_type, stage_body

router = APIRouter(
    prefix="/api/v1",
    responses=not_found("project, session, scan, collection or file"),
    tags=["sessions"],
)

SESSION = "/projects/{project}/sessions/{session}"
SCAN = SESSION + "/scans/{scan}"
COLLECTION = SESSION + "/collections/{label}"


@router.put(
    COLLECTION,
    status_code=201,
    response_model=CollectionOut,
    openapi_extra=raw_body("The RTSTRUCT or SEG file's bytes, sent as the raw request body."),
    responses={
        200: {"model": CollectionOut, "description": "An existing collection was replaced"},
        409: {"model": ErrorOut, "description": "The label exists and overwrite is not true"},
        413: {"model": ErrorOut, "description": "Larger than the upload limit"},
        422: {
            "model": ErrorOut,
            "description": "Wrong type, unreadable, references no scan of the session, or "
            "drawn in another frame of reference",
        },
    },
    name="api_put_collection",
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
    declared type, reference a scan of the session (422 names the series it references
    otherwise) and have every region in that scan's frame of reference (422 names the
    frames of reference otherwise). Owners and site admins.
    """
    database = get_database(request)
    storage = get_storage(request)
    limits = UploadLimits.from_settings(get_settings(request))
    events = imaging_events(request)

    def prepare() -> None:
        with database.session() as db:
            prepare_collection_upload(
                db, principal, project, session, label, collection_type, overwrite
            )

    await run_in_threadpool(prepare)
    staged = await stage_body(
        request, storage, limits.max_file_bytes, sniff=collection_body_sniff(label)
    )

    def store() -> tuple[dict[str, Any], bool]:
        with database.session(write=True) as db:
            saved = store_staged_collection(
                db,
                storage,
                principal,
                project,
                session,
                label,
                collection_type,
                staged,
                overwrite,
                events=events,
                limits=limits,
            )
            db.refresh(saved.collection)
            row = saved.collection
            out = CollectionOut.model_validate(
                present_collection(request, row.session.project_id, row)
            )
            return out.model_dump(mode="json"), saved.created

    body, created = await run_in_threadpool(store)
    return JSONResponse(body, status_code=201 if created else 200)


@router.get(
    SESSION + "/collections", response_model=list[CollectionOut], name="api_list_collections"
)
def list_collections(
    request: Request,
    project: str,
    session: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[CollectionOut]:
    """The session's ROI collections."""
    rows = collections.list_collections(db, principal, project, session)
    return [CollectionOut.model_validate(present_collection(request, project, r)) for r in rows]


@router.get(COLLECTION, response_model=CollectionOut, name="api_get_collection")
def get_collection(
    request: Request,
    project: str,
    session: str,
    label: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> CollectionOut:
    """An ROI collection's metadata: type, referenced scan, region names, checksum."""
    row = collections.get_collection(db, principal, project, session, label)
    return CollectionOut.model_validate(present_collection(request, row.session.project_id, row))


@router.get(
    COLLECTION + "/file",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/dicom": {}}, "description": "The file's bytes"}},
    name="api_download_collection",
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
    row, handle = collections.open_collection(db, storage, principal, project, session, label)
    return download_response(f"{row.label}.dcm", row.size, row.sha256, handle, "application/dicom")


@router.get(SCAN + "/resources", response_model=list[DerivedFolderOut], name="api_list_derived")
def list_derived(
    request: Request,
    project: str,
    session: str,
    scan: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[DerivedFolderOut]:
    """The scan's derived folders (one per model), each with ``label`` and ``files``."""
    found = lookup.get_scan(db, principal, project, session, scan)
    project_id = found.session.project_id
    return [
        DerivedFolderOut.model_validate(present_derived_folder(request, project_id, found, f))
        for f in derived.derived_folders_of(db, found)
    ]


@router.get(
    SCAN + "/resources/{folder}/files/{name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The bytes"}},
    name="api_download_derived",
)
def download_derived(
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
    row, handle = derived.open_derived_file(
        db, storage, principal, project, session, scan, folder, name
    )
    name = derived.derived_download_name(row)  # <session>_scan<id>_<model>_<file>
    return download_response(name, row.size, row.sha256, handle, guess_media_type(row.name))
