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
these handlers only read.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.jobs import queue
from segmap.server.jobs.presenters import present_job
from segmap.server.registry import mlmodels, projects
from segmap.server.registry.navigation import project_crumbs, project_tabs
from segmap.server.registry.presenters import present_project
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, optional_principal
from segmap.server.web.forms import logged_in
from segmap.server.web.pages import Crumb, page_context, render
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class ModelChoice:
    """A model an owner may start conversions with."""

    label: str
    automation: bool
    convert_api: str


@router.get("/projects/{project}/jobs", name="jobs_page")
def jobs_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Jobs tab: every job with its state and progress; owners start conversions."""
    who = logged_in(principal)
    access = projects.get_project(db, who, project)
    view = present_project(request, access.project, access.role, who)
    models = [
        ModelChoice(
            m.label, m.automation, path_for(request, "api_convert", project=view.id, model=m.label)
        )
        for m in mlmodels.list_models(db, who, project)
    ]
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab="jobs",
        jobs=[present_job(request, j, who) for j in queue.list_jobs(db, who, project)],
        models=models,
        can_manage=access.can_manage,
        jobs_api=path_for(request, "api_list_jobs", project=view.id),
        breadcrumbs=project_crumbs(request, view, Crumb("Jobs")),
    )
    return render(request, "jobs.html", context)
