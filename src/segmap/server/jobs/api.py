"""The jobs API under ``/api/v1``: conversion jobs, and starting conversions by hand.

Paths (a contract, see issue 5)::

    GET   /jobs/{id}                                   one job with its log
    GET   /projects/{p}/jobs[?state=&model=&limit=]    the project's jobs, newest first
    POST  /projects/{p}/models/{m}/convert             {"collection": ID | "SESSION/LABEL"}
                                                       or {} for every collection

A model's automation is switched with ``PATCH /projects/{p}/models/{m}`` (registry).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from segmap.server.jobs import queue
from segmap.server.jobs.presenters import present_job
from segmap.server.jobs.schemas import ConvertIn, ConvertOut, JobDetailOut, JobOut
from segmap.server.web.auth import Principal
from segmap.server.web.deps import api_principal, get_db
from segmap.server.web.schemas import ErrorOut, not_found

router = APIRouter(
    prefix="/api/v1", responses=not_found("project, model, collection or job"), tags=["jobs"]
)


def _wake_runner(request: Request) -> None:
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.wake()


@router.get("/jobs/{job_id}", response_model=JobDetailOut, name="api_get_job")
def get_job(
    request: Request,
    job_id: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> JobDetailOut:
    """One job with its state, progress, error and log (any member of its project)."""
    job = queue.get_job(db, principal, job_id)
    return JobDetailOut.model_validate(present_job(request, job, principal))


@router.get("/projects/{project}/jobs", response_model=list[JobOut], name="api_list_jobs")
def list_jobs(
    request: Request,
    project: str,
    state: str | None = Query(default=None, description="queued, running, succeeded, failed"),
    model: str | None = Query(default=None, description="a model's id or label"),
    limit: int = Query(default=200, ge=1, le=queue.MAX_LISTED),
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[JobOut]:
    """The project's jobs, newest first."""
    found = queue.list_jobs(db, principal, project, state=state, model_ref=model, limit=limit)
    return [JobOut.model_validate(present_job(request, j, principal)) for j in found]


@router.post(
    "/projects/{project}/models/{model}/convert",
    status_code=202,
    response_model=ConvertOut,
    responses={422: {"model": ErrorOut, "description": "No region map, or nothing to convert"}},
    name="api_convert",
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
    jobs = queue.start_conversion(db, principal, project, model, collection)
    out = ConvertOut(jobs=[JobOut.model_validate(present_job(request, j, principal)) for j in jobs])
    _wake_runner(request)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)
