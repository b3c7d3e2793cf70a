"""The REST API under ``/api/v1`` (documented by OpenAPI at ``/docs``).

Thin: each endpoint parses its input, calls one service function and shapes the answer.
Errors are ``ServiceError``s turned into ``{"detail": ...}`` by the app's handlers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from segmap.server import services
from segmap.server.api_schemas import (
    ErrorOut,
    FolderOut,
    MapErrorOut,
    MemberIn,
    MemberOut,
    MeOut,
    ModelIn,
    ModelOut,
    ProjectIn,
    ProjectOut,
    RegionMapOut,
    TokenOut,
    TokenRequest,
    UploadOut,
    file_out,
    folder_out,
    model_out,
    project_out,
)
from segmap.server.auth import Principal
from segmap.server.db.base import utcnow
from segmap.server.deps import api_principal, get_database, get_db, get_settings, get_storage
from segmap.server.errors import NotAuthenticated
from segmap.server.services.access import require_principal
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage, StagingWriter
from segmap.server.transfer import download_response, receive_body, refuse_declared_oversize

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Not logged in"},
    403: {"model": ErrorOut, "description": "Not allowed for your role"},
    404: {"model": ErrorOut, "description": "No such project, model, folder or file"},
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)

PROJECT = "/projects/{project}"
MODEL = PROJECT + "/models/{model}"
FOLDER = MODEL + "/resources/{folder}"
FILE = FOLDER + "/files/{name:path}"


@router.post("/auth/token", response_model=TokenOut, tags=["auth"])
def create_token(
    body: TokenRequest,
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> TokenOut:
    """Exchange a username and password for an API token (it lasts
    ``SEGMAP_TOKEN_MAX_AGE_S`` seconds, 30 days unless the operator set otherwise)."""
    principal = services.authenticate(db, body.username, body.password, via="token")
    if principal is None:
        raise NotAuthenticated("wrong username or password")
    token = services.issue_token(db, principal)
    max_age = settings.token_max_age_s
    expires_at = utcnow() + timedelta(seconds=max_age) if max_age else None
    return TokenOut(token=token, expires_at=expires_at)


@router.delete("/auth/token", status_code=204, tags=["auth"])
def delete_token(request: Request, db: Session = Depends(get_db)) -> Response:
    """Revoke the bearer token this request is made with."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send the token to revoke as 'Authorization: Bearer <token>'")
    if not services.revoke_token(db, token.strip()):
        raise NotAuthenticated("the API token is not valid (already revoked or mistyped)")
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, tags=["auth"])
def me(principal: Principal | None = Depends(api_principal)) -> MeOut:
    """Who the request is authenticated as."""
    who = require_principal(principal)
    return MeOut(username=who.username, is_admin=who.is_admin)


@router.get("/projects", response_model=list[ProjectOut], tags=["projects"])
def list_projects(
    db: Session = Depends(get_db), principal: Principal | None = Depends(api_principal)
) -> list[ProjectOut]:
    """Projects you belong to (every project for site admins)."""
    return [project_out(e) for e in services.list_projects(db, principal)]


@router.post("/projects", status_code=201, response_model=ProjectOut, tags=["projects"])
def create_project(
    body: ProjectIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ProjectOut:
    """Create a project; you become its owner. Any logged-in user may."""
    project = services.create_project(db, principal, body.id, body.name)
    return project_out(services.ProjectEntry(project, "owner"))


@router.get(PROJECT, response_model=ProjectOut, tags=["projects"])
def get_project(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ProjectOut:
    """One project."""
    access = services.get_project(db, principal, project)
    return project_out(services.ProjectEntry(access.project, access.role))


@router.get(PROJECT + "/members", response_model=list[MemberOut], tags=["projects"])
def list_members(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[MemberOut]:
    """Members of a project with their roles."""
    return [
        MemberOut(username=m.username, role=m.role)
        for m in services.list_members(db, principal, project)
    ]


@router.post(
    PROJECT + "/members",
    status_code=201,
    response_model=MemberOut,
    tags=["projects"],
    responses={200: {"model": MemberOut, "description": "Role of an existing member changed"}},
)
def set_member(
    project: str,
    body: MemberIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Add a user to a project or change their role (owners and admins)."""
    created = services.set_member(db, principal, project, body.username, body.role)
    user = services.find_user(db, body.username)
    out = MemberOut(username=user.username if user else body.username, role=body.role)
    return JSONResponse(out.model_dump(), status_code=201 if created else 200)


@router.delete(PROJECT + "/members/{username}", status_code=204, tags=["projects"])
def remove_member(
    project: str,
    username: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Take a user out of a project (owners and admins)."""
    services.remove_member(db, principal, project, username)
    return Response(status_code=204)


@router.get(PROJECT + "/models", response_model=list[ModelOut], tags=["models"])
def list_models(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[ModelOut]:
    """The project's installed models."""
    return [model_out(m) for m in services.list_models(db, principal, project)]


@router.post(PROJECT + "/models", status_code=201, response_model=ModelOut, tags=["models"])
def create_model(
    project: str,
    body: ModelIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ModelOut:
    """Install a model (owners and admins). ``voxel_spacing`` is [x, y, z] in mm."""
    model = services.create_model(
        db,
        principal,
        project,
        label=body.label,
        description=body.description,
        voxel_spacing=body.voxel_spacing,
        automation=body.automation,
    )
    return model_out(model)


@router.get(MODEL, response_model=ModelOut, tags=["models"])
def get_model(
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ModelOut:
    """One model, by numeric id or by label."""
    _access, found = services.get_model(db, principal, project, model)
    return model_out(found)


@router.delete(MODEL, status_code=204, tags=["models"])
def delete_model(
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Remove a model with all its files (owners and admins)."""
    services.delete_model(db, storage, principal, project, model)
    return Response(status_code=204)


@router.get(MODEL + "/resources", response_model=list[FolderOut], tags=["files"])
def list_resources(
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[FolderOut]:
    """The model's folders with their files (name, size, sha256)."""
    return [folder_out(f) for f in services.list_resources(db, principal, project, model)]


@router.put(
    FOLDER,
    status_code=201,
    response_model=FolderOut,
    tags=["files"],
    responses={200: {"model": FolderOut, "description": "The folder already existed"}},
)
def create_folder(
    project: str,
    model: str,
    folder: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Create a folder (201), or confirm it exists (200). Owners and admins."""
    row, created = services.create_folder(db, principal, project, model, folder)
    out = folder_out(row)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@router.delete(FOLDER, status_code=204, tags=["files"])
def delete_folder(
    project: str,
    model: str,
    folder: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Delete a folder and every file in it (owners and admins)."""
    services.delete_folder(db, storage, principal, project, model, folder)
    return Response(status_code=204)


_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, sent as the raw request body.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put(
    FILE,
    status_code=201,
    response_model=UploadOut,
    tags=["files"],
    openapi_extra=_RAW_BODY,
    responses={
        200: {"model": UploadOut, "description": "An existing file was replaced"},
        413: {"model": ErrorOut, "description": "Larger than the upload limit"},
        422: {"model": MapErrorOut, "description": "Bad name, or an invalid region map"},
    },
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
            services.prepare_upload(db, principal, project, model, folder, name)
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
            saved = services.store_staged(
                db, storage, principal, project, model, folder, name, staged
            )
            body = UploadOut(**file_out(saved.file).model_dump(), folder=saved.folder.name)
            return body.model_dump(mode="json"), saved.created

    body, created = await run_in_threadpool(store)
    return JSONResponse(body, status_code=201 if created else 200)


@router.get(
    FILE,
    tags=["files"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The bytes"}},
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
    row, handle = services.open_file(db, storage, principal, project, model, folder, name)
    return download_response(row.name, row.size, row.sha256, handle, "application/octet-stream")


@router.delete(FILE, status_code=204, tags=["files"])
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
    services.delete_file(db, storage, principal, project, model, folder, name)
    return Response(status_code=204)


@router.get(
    MODEL + "/region-map",
    response_model=RegionMapOut,
    tags=["models"],
    responses={409: {"model": ErrorOut, "description": "Folders hold different maps"}},
)
def region_map(
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """The model's region map as JSON."""
    return services.get_region_map(db, storage, principal, project, model).to_json()
