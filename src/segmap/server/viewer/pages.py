"""The project's Viewer tab: ``/projects/{p}/viewer``.

With the viewer installed the tab sends the browser (303) to OHIF's study list on the
project's data source (:func:`.links.viewer_study_list_url`), which lists the studies of
that project only. Without it the tab is a page of the project that says the viewer is
not installed and how an administrator installs it. Either way the caller must be able
to see the project (outsiders get 404, as for every project page).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from segmap.server.errors import Forbidden, NotFound
from segmap.server.registry import projects
from segmap.server.registry.navigation import VIEWER_TAB, project_crumbs, project_tabs
from segmap.server.registry.presenters import present_project
from segmap.server.viewer.links import viewer_study_list_url
from segmap.server.viewer.routes import NOT_INSTALLED, installed_dist
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, optional_principal
from segmap.server.web.forms import logged_in
from segmap.server.web.pages import Crumb, page_context, render

router = APIRouter(include_in_schema=False)


@router.get("/projects/{project}/viewer", name="viewer_tab")
def viewer_tab(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """OHIF's study list for the project, or a page saying the viewer is not installed."""
    who = logged_in(principal)
    try:
        access = projects.get_project(db, who, project)
    except Forbidden:  # the data source is not in their config either: no such project
        raise NotFound(f"there is no project {project!r}") from None
    if installed_dist(request) is not None:
        return RedirectResponse(viewer_study_list_url(access.project.id), status_code=303)
    view = present_project(request, access.project, access.role, who)
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab=VIEWER_TAB,
        message=NOT_INSTALLED,
        breadcrumbs=project_crumbs(request, view, Crumb("Viewer")),
    )
    return render(request, "viewer_missing.html", context)
