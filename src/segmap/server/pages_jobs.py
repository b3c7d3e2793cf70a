"""The Jobs page of a project, and the job controls other pages include.

Paths::

    /projects/{p}/jobs        every job of the project, newest first; owners start
                              conversions. The table updates itself (static/jobs.js
                              polls GET /api/v1/projects/{p}/jobs).

Partials for other pages' templates (included with ``ignore missing``):

* ``_model_jobs.html`` on View Model: the automation switch (PATCH
  /api/v1/projects/{p}/models/{m}), "Convert all collections", the model's recent jobs;
* ``_collection_jobs.html`` on a session page, once per ROI collection: "Convert with"
  buttons per model and the live state of that collection's jobs.

All changes go through the REST API from the browser with the ``X-CSRF-Token`` header;
these handlers only read. ``install`` adds the Jobs tab to the project page's tabs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server import services
from segmap.server.auth import Principal
from segmap.server.db.jobs import Job
from segmap.server.deps import get_db, optional_principal
from segmap.server.pages_common import Crumb, format_time, page_context, project_crumbs, render
from segmap.server.pages_views import model_url, project_tabs, project_url, project_view
from segmap.server.services import jobs as job_services

router = APIRouter(include_in_schema=False)

def jobs_url(project_id: str) -> str:
    """The project's Jobs page."""
    return f"{project_url(project_id)}/jobs"


@dataclass(frozen=True)
class JobRow:
    """A job as the Jobs table shows it (the same fields as the API's, for the script)."""

    id: int
    model: str
    model_url: str
    collection: str
    session_label: str
    session_url: str
    state: str
    progress_pct: int
    stage: str
    error: str
    attempts: int
    trigger: str
    created_text: str
    started_text: str
    finished_text: str
    duration_text: str
    outputs_url: str


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def job_row(project_id: str, job: Job) -> JobRow:
    """The table row of a job."""
    collection = job.collection
    session = collection.session
    session_page = f"{project_url(project_id)}/sessions/{collection.session_id}"
    return JobRow(
        id=job.id,
        model=job.model.label,
        model_url=model_url(project_id, job.model.label),
        collection=collection.label,
        session_label=session.label if session is not None else str(collection.session_id),
        session_url=session_page,
        state=job.state,
        progress_pct=int(round(100 * float(job.progress or 0.0))),
        stage=job.stage or "",
        error=job.error or "",
        attempts=job.attempts,
        trigger=job.trigger,
        created_text=format_time(job.created_at),
        started_text=format_time(job.started_at) if job.started_at else "",
        finished_text=format_time(job.finished_at) if job.finished_at else "",
        duration_text=_duration(job.started_at, job.finished_at),
        outputs_url=f"{session_page}#derived" if job.state == "succeeded" else "",
    )


@dataclass(frozen=True)
class ModelChoice:
    """A model an owner may start conversions with."""

    label: str
    automation: bool
    convert_api: str


@router.get("/projects/{project}/jobs")
def jobs_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Jobs tab: every job with its state and progress; owners start conversions."""
    who = services.require_principal(principal)
    access = services.get_project(db, who, project)
    view = project_view(access.project, access.role, who)
    rows = [job_row(view.id, j) for j in job_services.list_jobs(db, who, project)]
    models = [
        ModelChoice(m.label, m.automation,
                    f"/api/v1/projects/{quote(view.id, safe='')}/models/"
                    f"{quote(m.label, safe='')}/convert")
        for m in services.list_models(db, who, project)
    ]
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(view.id),
        active_tab="jobs",
        jobs=rows,
        models=models,
        can_manage=access.can_manage,
        jobs_api=f"/api/v1/projects/{quote(view.id, safe='')}/jobs",
        breadcrumbs=project_crumbs(view, Crumb("Jobs")),
    )
    return render(request, "jobs.html", context)


__all__ = ["job_row", "jobs_url", "router"]
