"""The archive API under ``/api/v1/projects/{project}/archive`` (owners and site admins).

``PUT`` connects (or changes the connection), ``GET`` shows it with its follower's state
(never the password), ``DELETE`` disconnects; ``POST .../test`` says whether the archive
answers (the stored settings, or others sent in the body); ``POST .../import`` queues an
import of studies or series, ``GET .../imports/{import_id}`` shows its progress.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from segmap.server.archive import connections, manual
from segmap.server.archive.connections import ConnectionSettings
from segmap.server.archive.diagnose import Diagnosis, test_connection
from segmap.server.archive.schemas import ConnectionIn, ConnectionOut, ImportIn, ImportOut, TestOut
from segmap.server.archive.secrets import SecretBox, secret_box
from segmap.server.db.archive import ArchiveImport
from segmap.server.errors import NotFound
from segmap.server.names import numeric_id
from segmap.server.web.auth import Principal
from segmap.server.web.deps import api_principal, get_db, get_settings
from segmap.server.web.schemas import not_found
from segmap.server.web.urls import path_for

router = APIRouter(prefix="/api/v1", responses=not_found("project"), tags=["archive"])

ARCHIVE = "/projects/{project}/archive"


def box_of(request: Request) -> SecretBox:
    """The service's secret box (key from the environment or the data folder)."""
    return secret_box(get_settings(request).data_dir)


def _settings(body: ConnectionIn) -> ConnectionSettings:
    return ConnectionSettings(
        body.kind,
        body.url,
        body.username,
        body.password,
        body.push_masks,
        body.filter,
        body.prefetch_images,
    )


def _out(db: Session, row: Any) -> ConnectionOut:
    return ConnectionOut.model_validate(connections.present_connection(db, row))


@router.put(
    ARCHIVE,
    response_model=ConnectionOut,
    name="api_put_archive",
    responses={201: {"model": ConnectionOut, "description": "Connected"}},
)
def put_archive(
    request: Request,
    project: str,
    body: ConnectionIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Connect the project to an archive (201), or change its connection (200)."""
    _, existing = connections.find_connection(db, principal, project)
    row = connections.set_connection(db, principal, project, _settings(body), box_of(request))
    out = _out(db, row)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if existing else 201)


@router.get(ARCHIVE, response_model=ConnectionOut, name="api_get_archive")
def get_archive(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ConnectionOut:
    """The connection (without the password) and what its follower did."""
    return _out(db, connections.get_connection(db, principal, project))


@router.delete(ARCHIVE, status_code=204, name="api_delete_archive")
def delete_archive(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Disconnect: the follower stops; what was imported stays."""
    connections.delete_connection(db, principal, project)
    return Response(status_code=204)


@router.post(ARCHIVE + "/test", response_model=TestOut, name="api_test_archive")
async def test_archive(
    request: Request,
    project: str,
    body: ConnectionIn | None = None,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> TestOut:
    """Call the archive once: the settings in the body (a null password: the stored one),
    or the stored connection. 200 with ``ok`` false and the problem when it fails."""
    kind, url, username, password = await run_in_threadpool(
        _test_settings, request, db, principal, project, body
    )
    found: Diagnosis = await run_in_threadpool(test_connection, kind, url, username, password)
    return TestOut(ok=found.ok, problem=found.problem, message=found.message)


def _test_settings(
    request: Request,
    db: Session,
    principal: Principal | None,
    project: str,
    body: ConnectionIn | None,
) -> tuple[str, str, str, str]:
    _, row = connections.find_connection(db, principal, project)
    box = box_of(request)
    if body is None:
        if row is None:
            raise NotFound(
                f"project {project!r} is not connected to an archive; send the "
                "settings to test in the body"
            )
        found = row.kind, row.url, row.username, connections.password_of(row, box)
        db.rollback()  # no lock held while the archive is called
        return found
    return connections.settings_to_test(db, principal, project, _settings(body), box)


def import_out(request: Request, row: ArchiveImport) -> ImportOut:
    """The API's view of an import."""
    url = path_for(request, "api_get_archive_import", project=row.project_id, import_id=str(row.id))
    return ImportOut(
        id=row.id,
        project=row.project_id,
        state=row.state,
        studies=list(row.studies),
        series=list(row.series),
        progress=row.progress,
        stage=row.stage,
        imported=row.imported,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        url=url,
    )


@router.post(
    ARCHIVE + "/import", status_code=202, response_model=ImportOut, name="api_archive_import"
)
def post_import(
    request: Request,
    project: str,
    body: ImportIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ImportOut:
    """Pull these studies and series from the archive now (a job; follow its ``url``)."""
    row = manual.queue_import(db, principal, project, body.studies, body.series)
    return import_out(request, row)


@router.get(
    ARCHIVE + "/imports/{import_id}", response_model=ImportOut, name="api_get_archive_import"
)
def get_import(
    request: Request,
    project: str,
    import_id: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ImportOut:
    """An import's state and progress."""
    number = numeric_id(import_id)
    if number is None:
        raise NotFound(f"there is no archive import {import_id!r}")
    return import_out(request, manual.get_import(db, principal, project, number))
