"""The model files API under ``/api/v1``: resource folders and the files in them.

Uploads stream the raw body into staging (never into memory); a region map is checked
before it is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from segmap.server.registry import files, folders
from segmap.server.registry.presenters import present_file, present_folder
from segmap.server.registry.schemas import FileOut, FolderOut, MapErrorOut, UploadOut
from segmap.server.storage import LocalStorage, StagingWriter
from segmap.server.web.auth import Principal
from segmap.server.web.deps import (
    api_principal,
    get_database,
    get_db,
    get_settings,
    get_storage,
)
from segmap.server.web.schemas import ErrorOut, not_found, raw_body
from segmap.server.web.transfer import download_response, receive_body, refuse_declared_oversize

router = APIRouter(
    prefix="/api/v1", responses=not_found("project, model, folder or file"), tags=["files"]
)

MODEL = "/projects/{project}/models/{model}"
FOLDER = MODEL + "/resources/{folder}"
FILE = FOLDER + "/files/{name:path}"


@router.get(MODEL + "/resources", response_model=list[FolderOut], name="api_list_resources")
def list_resources(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[FolderOut]:
    """The model's folders with their files (name, size, sha256)."""
    rows = folders.list_resources(db, principal, project, model)
    return [FolderOut.model_validate(present_folder(request, f)) for f in rows]


@router.put(
    FOLDER,
    status_code=201,
    response_model=FolderOut,
    responses={200: {"model": FolderOut, "description": "The folder already existed"}},
    name="api_create_folder",
)
def create_folder(
    request: Request,
    project: str,
    model: str,
    folder: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Create a folder (201), or confirm it exists (200). Owners and admins."""
    row, created = folders.create_folder(db, principal, project, model, folder)
    out = FolderOut.model_validate(present_folder(request, row))
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@router.delete(FOLDER, status_code=204, name="api_delete_folder")
def delete_folder(
    project: str,
    model: str,
    folder: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Delete a folder and every file in it (owners and admins)."""
    folders.delete_folder(db, storage, principal, project, model, folder)
    return Response(status_code=204)


@router.put(
    FILE,
    status_code=201,
    response_model=UploadOut,
    openapi_extra=raw_body(),
    responses={
        200: {"model": UploadOut, "description": "An existing file was replaced"},
        413: {"model": ErrorOut, "description": "Larger than the upload limit"},
        422: {"model": MapErrorOut, "description": "Bad name, or an invalid region map"},
    },
    name="api_upload_file",
)
async def upload_file(
    request: Request,
    project: str,
    model: str,
    folder: str,
    name: str,
) -> Any:
    """Upload a file with the raw body (201; 200 when it replaces one).

    The folder is created when missing. A ``region2MaskValueMap.txt`` is validated and
    refused with every problem when invalid. The body streams to disk, never to memory.
    """
    database = get_database(request)
    storage = get_storage(request)
    limit = get_settings(request).max_upload_bytes

    # Everything before the body arrives in one worker-thread call: who is calling, may
    # they upload this, is it too large; then a staging file to receive it.
    def begin() -> tuple[Principal | None, StagingWriter]:
        principal = api_principal(request)
        with database.session() as db:
            files.prepare_upload(db, principal, project, model, folder, name)
        refuse_declared_oversize(request, limit)
        return principal, storage.stage(limit)

    principal, writer = await run_in_threadpool(begin)
    tail = await receive_body(request, writer)

    def store() -> tuple[dict[str, Any], bool]:
        try:
            writer.write(tail)
            staged = writer.finish()
        except BaseException:
            writer.discard()
            raise
        with database.session(write=True) as db:
            saved = files.store_staged(db, storage, principal, project, model, folder, name, staged)
            view = FileOut.model_validate(present_file(request, saved.folder, saved.file))
            body = UploadOut(**view.model_dump(), folder=saved.folder.name)
            return body.model_dump(mode="json"), saved.created

    body, created = await run_in_threadpool(store)
    return JSONResponse(body, status_code=201 if created else 200)


@router.get(
    FILE,
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The bytes"}},
    name="api_download_file",
)
def download_file(
    project: str,
    model: str,
    folder: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> StreamingResponse:
    """Download a file's bytes exactly as uploaded (members and collaborators too)."""
    row, handle = files.open_file(db, storage, principal, project, model, folder, name)
    return download_response(row.name, row.size, row.sha256, handle, "application/octet-stream")


@router.delete(FILE, status_code=204, name="api_delete_file")
def delete_file(
    project: str,
    model: str,
    folder: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Delete a file (owners and admins)."""
    files.delete_file(db, storage, principal, project, model, folder, name)
    return Response(status_code=204)
