"""Pages of imaging sessions: the project's Sessions tab and a session's page.

Paths::

    /projects/{p}/sessions            sessions with their scans; Upload Session (owners)
    /projects/{p}/sessions/{s}        scans, ROI collections (region names matched per
                                      model), Upload ROI Collection, and per scan the
                                      derived resources: preview and report figures

Uploads go from the browser to the REST API (``static/imaging.js``, XMLHttpRequest for
the progress bar, ``X-CSRF-Token`` header); these handlers only read. ``install`` adds
the Sessions tab to the project page's tabs.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server import services
from segmap.server.auth import Principal
from segmap.server.deps import get_db, get_storage, optional_principal
from segmap.server.pages_common import Crumb, page_context, project_crumbs, render
from segmap.server.pages_imaging_views import (
    collection_view,
    derived_views,
    format_date,
    model_maps,
    scan_row,
    session_api_url,
    session_row,
    session_url,
    sessions_url,
)
from segmap.server.pages_views import project_tabs, project_view
from segmap.server.services.imaging import derived_folders_of, sorted_scans
from segmap.server.storage import LocalStorage

router = APIRouter(include_in_schema=False)

@router.get("/projects/{project}/sessions")
def sessions_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Sessions tab: every session with subject, date and its scans; Upload Session."""
    who = services.require_principal(principal)
    access = services.get_project(db, who, project)
    view = project_view(access.project, access.role, who)
    rows = [
        session_row(view.id, s, sorted_scans(s)) for s in services.list_sessions(db, who, project)
    ]
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(view.id),
        active_tab="sessions",
        sessions=rows,
        can_manage=access.can_manage,
        upload_api=f"/api/v1/projects/{view.id}/sessions",
        breadcrumbs=project_crumbs(view, Crumb("Sessions")),
    )
    return render(request, "imaging_sessions.html", context)


@router.get("/projects/{project}/sessions/{session}")
def session_page(
    request: Request,
    project: str,
    session: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """A session: scans, ROI collections with matched region names, derived results."""
    who = services.require_principal(principal)
    access = services.get_project(db, who, project)
    view = project_view(access.project, access.role, who)
    found = services.get_session(db, who, project, session)
    scans = sorted_scans(found)
    by_id = {s.id: s for s in scans}
    maps = model_maps(db, storage, view.id, services.list_models(db, who, project))
    collections = [collection_view(view.id, c, by_id, maps) for c in found.collections]
    results = [
        (scan_row(scan), derived_views(db, storage, view.id, found.id, scan, folders))
        for scan in scans
        if (folders := derived_folders_of(db, scan))
    ]
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(view.id),
        active_tab="sessions",
        session=session_row(view.id, found, scans),
        study_uid=found.study_instance_uid,
        description=found.study_description,
        date_text=format_date(found.study_date),
        scans=[scan_row(s) for s in scans],
        collections=collections,
        models=maps,
        results=results,
        can_manage=access.can_manage,
        session_api=session_api_url(view.id, found.id),
        page_url=session_url(view.id, found.id),
        breadcrumbs=project_crumbs(
            view, Crumb("Sessions", sessions_url(view.id)), Crumb(found.label)
        ),
    )
    return render(request, "imaging_session.html", context)


__all__ = ["router"]
