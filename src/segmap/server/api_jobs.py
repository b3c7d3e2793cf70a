"""REST API of conversion jobs and model automation (under ``/api/v1``).

Paths (a contract, see issue 5)::

    GET   /jobs/{id}                                   one job with its log
    GET   /projects/{p}/jobs[?state=&model=&limit=]    the project's jobs, newest first
    POST  /projects/{p}/models/{m}/convert             {"collection": ID | "SESSION/LABEL"}
                                                       or {} for every collection
    PATCH /projects/{p}/models/{m}                     {"automation": true | false}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from segmap.server.api_schemas import ErrorOut, ModelOut, model_out
from segmap.server.auth import Principal
from segmap.server.db.imaging import ImagingSession
from segmap.server.db.jobs import Job
from segmap.server.deps import api_principal, get_db
from segmap.server.services import jobs as job_services

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Not logged in"},
    403: {"model": ErrorOut, "description": "Not allowed for your role"},
    404: {"model": ErrorOut, "description": "No such project, model, collection or job"},
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS, tags=["jobs"])


class JobOut(BaseModel):
    """A conversion job. ``progress`` is 0..1; ``error`` says what to do when it failed."""

    id: int
    project: str
    model: str
    model_id: int
    collection: str
    collection_id: int
    collection_type: str
    session: int
    session_label: str
    scan: int
    state: str = Field(description="queued, running, succeeded or failed")
    progress: float
    stage: str
    error: str | None
    attempts: int
    trigger: str = Field(description="automation or manual")
    output_folder: str | None = Field(
        description="derived folder on the scan holding the outputs (succeeded jobs)")
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str
    resources_url: str


class JobDetailOut(JobOut):
    """A job with its log (readable lines, oldest first)."""

    log: str


class ConvertIn(BaseModel):
    """What to convert: one collection (its id or ``SESSION/LABEL``), or all when absent."""

    model_config = ConfigDict(extra="forbid")

    collection: int | str | None = Field(
        default=None, examples=[12, "1.2.840.113619.2.55.3/liver-rois"],
        description="ROI collection id or SESSION/LABEL; omit to convert every collection",
    )


class ConvertOut(BaseModel):
    """The jobs queued (a job already waiting for the same model and collection is reused)."""

    jobs: list[JobOut]


class ModelPatchIn(BaseModel):
    """Change a model's automation (generate masks when an ROI collection arrives)."""

    model_config = ConfigDict(extra="forbid")

    automation: bool


def job_out(job: Job, detail: bool = False) -> JobOut:
    """JSON of a job (with its log when ``detail``)."""
    collection = job.collection
    session = collection.session if collection is not None else None
    session_label = session.label if isinstance(session, ImagingSession) else ""
    project = quote(job.project_id, safe="")
    fields: dict[str, Any] = {
        "id": job.id,
        "project": job.project_id,
        "model": job.model.label,
        "model_id": job.model_id,
        "collection": collection.label,
        "collection_id": job.collection_id,
        "collection_type": collection.collection_type,
        "session": collection.session_id,
        "session_label": session_label,
        "scan": collection.scan_id,
        "state": job.state,
        "progress": round(float(job.progress or 0.0), 4),
        "stage": job.stage or "",
        "error": job.error,
        "attempts": job.attempts,
        "trigger": job.trigger,
        "output_folder": job.output_folder,
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "url": f"/api/v1/jobs/{job.id}",
        "resources_url": (f"/api/v1/projects/{project}/sessions/{collection.session_id}"
                          f"/scans/{collection.scan_id}/resources"),
    }
    if detail:
        return JobDetailOut(**fields, log=job.log or "")
    return JobOut(**fields)


def _wake_runner(request: Request) -> None:
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.wake()


@router.get("/jobs/{job_id}", response_model=JobDetailOut)
def get_job(
    job_id: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> JobOut:
    """One job with its state, progress, error and log (any member of its project)."""
    return job_out(job_services.get_job(db, principal, job_id), detail=True)


@router.get("/projects/{project}/jobs", response_model=list[JobOut])
def list_jobs(
    project: str,
    state: str | None = Query(default=None, description="queued, running, succeeded, failed"),
    model: str | None = Query(default=None, description="a model's id or label"),
    limit: int = Query(default=200, ge=1, le=job_services.MAX_LISTED),
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[JobOut]:
    """The project's jobs, newest first."""
    found = job_services.list_jobs(db, principal, project, state=state, model_ref=model,
                                   limit=limit)
    return [job_out(j) for j in found]


@router.post(
    "/projects/{project}/models/{model}/convert",
    status_code=202,
    response_model=ConvertOut,
    responses={422: {"model": ErrorOut, "description": "No region map, or nothing to convert"}},
)
def convert(
    request: Request,
    project: str,
    model: str,
    body: ConvertIn | None = Body(default=None),
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Queue conversions with this model: one collection, or every collection of the project.

    Owners and site admins. Answers 202 with the queued jobs; follow them at their ``url``.
    """
    collection = body.collection if body is not None else None
    jobs = job_services.start_conversion(db, principal, project, model, collection)
    out = ConvertOut(jobs=[job_out(j) for j in jobs])
    _wake_runner(request)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.patch("/projects/{project}/models/{model}", response_model=ModelOut, tags=["models"])
def patch_model(
    project: str,
    model: str,
    body: ModelPatchIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ModelOut:
    """Switch the model's automation on or off (owners and site admins).

    With automation on, every ROI collection stored afterwards gets a job for this model.
    """
    return model_out(job_services.set_automation(db, principal, project, model,
                                                 body.automation))
