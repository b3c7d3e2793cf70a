"""XNAT's ROI collection upload, so existing XNAT upload scripts work against segmap.

``PUT /xapi/roi/projects/{project}/sessions/{session}/collections/{label}?type=SEG|RTSTRUCT``
with the raw file as the body (``application/octet-stream``), authenticated as XNAT
scripts are (HTTP Basic; a bearer token works too). As XNAT answers:

- 200 with the collection's id as plain text when stored (new, or replaced with
  ``overwrite=true``);
- 422 when the session already has a collection of that label and ``overwrite`` is
  not set;
- 409 when another session of the project has a collection of that label (XNAT's labels
  are unique in a project).

``{session}`` is the session's id, its StudyInstanceUID or its label. The file is
checked and stored by ``imaging.collection_upload`` (so automation runs), with the
same permissions as the REST upload (owners and site admins).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from segmap.server.db.imaging import ImagingSession, RoiCollection
from segmap.server.dicomweb.auth import check_origin, dicomweb_principal, project_reader
from segmap.server.dicomweb.responses import DicomwebRoute
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.imaging.collection_upload import (
    prepare_collection_upload,
    store_staged_collection,
)
from segmap.server.imaging.events import imaging_events
from segmap.server.imaging.lookup import find_session
from segmap.server.names import name_key
from segmap.server.registry.access import ProjectAccess
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_database, get_settings, get_storage
from segmap.server.web.transfer import stage_body

router = APIRouter(route_class=DicomwebRoute, tags=["XNAT"])


def _session(db: Session, access: ProjectAccess, ref: str) -> ImagingSession:
    try:
        return find_session(db, access, ref)
    except NotFound:
        found = db.scalar(
            select(ImagingSession).where(
                ImagingSession.project_id == access.project.id, ImagingSession.label == ref
            )
        )
        if found is None:
            raise
        return found


def _check_label(db: Session, session: ImagingSession, label: str, overwrite: bool) -> None:
    rows = db.execute(
        select(RoiCollection.session_id, ImagingSession.label)
        .join(ImagingSession, ImagingSession.id == RoiCollection.session_id)
        .where(
            ImagingSession.project_id == session.project_id,
            RoiCollection.label_key == name_key(label),
        )
    ).all()
    for session_id, session_label in rows:
        if session_id != session.id:
            raise Conflict(
                f"the ROI collection label {label!r} is used by session {session_label!r} of "
                "this project; labels are unique in a project, choose another"
            )
        if not overwrite:
            raise Unprocessable(
                f"session {session.label!r} already has an ROI collection {label!r}; add "
                "overwrite=true to replace it"
            )


@router.put(
    "/xapi/roi/projects/{project}/sessions/{session}/collections/{label}",
    name="xnat_put_collection",
    response_class=PlainTextResponse,
)
async def put_collection(
    request: Request,
    project: str,
    session: str,
    label: str,
    collection_type: str = Query(..., alias="type", description="RTSTRUCT or SEG"),
    overwrite: bool = Query(False, description="Replace the session's collection of this label"),
    principal: Principal | None = Depends(dicomweb_principal),
) -> Response:
    """Store an RTSTRUCT or SEG as an ROI collection, the way XNAT's ROI upload does."""
    database = get_database(request)
    storage = get_storage(request)
    limit = get_settings(request).max_upload_bytes
    events = imaging_events(request)

    def prepare() -> int:
        with database.session() as db:
            access = project_reader(db, principal, project)
            check_origin(request, principal)
            found = _session(db, access, session)
            _check_label(db, found, label, overwrite)
            prepare_collection_upload(
                db, principal, access.project.id, found.id, label, collection_type, overwrite
            )
            return found.id

    session_id = await run_in_threadpool(prepare)
    staged = await stage_body(request, storage, limit)

    def store() -> int:
        with database.session(write=True) as db:
            try:
                saved = store_staged_collection(
                    db, storage, principal, project, session_id, label, collection_type,
                    staged, overwrite, events=events,
                )  # fmt: skip
            except Conflict as exc:  # created by a concurrent upload meanwhile
                raise Unprocessable(exc.message) from None
            return saved.collection.id

    collection_id = await run_in_threadpool(store)
    return PlainTextResponse(str(collection_id), status_code=200)
