"""Pages of imaging sessions: the project's Sessions tab and a session's page.

Paths::

    /projects/{p}/sessions            sessions with their scans, Open in OHIF per
                                      session (with each mapped model's labels);
                                      Upload Session (owners)
    /projects/{p}/sessions/{s}        scans, ROI collections (region names matched per
                                      model), Upload ROI Collection, and per scan the
                                      derived resources: preview and report figures

Uploads go from the browser to the REST API (``static/imaging.js``, XMLHttpRequest for
the progress bar, ``X-CSRF-Token`` header); these handlers only read.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.db.imaging import DerivedFolder
from segmap.server.imaging import derived, lookup
from segmap.server.imaging.matching import ModelMap, collection_matches, model_maps
from segmap.server.imaging.presenters import (
    DerivedFolderView,
    ScanView,
    present_derived_folder,
    present_session,
)
from segmap.server.imaging.report_figures import (
    PREVIEW_NAME,
    REPORT_NAME,
    ReportFigures,
    stored_report_figures,
)
from segmap.server.registry import mlmodels, projects
from segmap.server.registry.navigation import project_crumbs, project_tabs
from segmap.server.registry.presenters import present_project
from segmap.server.storage import LocalStorage
from segmap.server.viewer.links import ViewerLink, study_links
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, get_storage, optional_principal
from segmap.server.web.forms import logged_in
from segmap.server.web.pages import Crumb, page_context, render
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)

SESSIONS = "/projects/{project}/sessions"


def _viewer_links(
    project_id: str, study_instance_uid: str, maps: list[ModelMap]
) -> list[ViewerLink]:
    """Open in OHIF for a study: as OHIF ships, then with each model whose map is usable."""
    return study_links(
        project_id, study_instance_uid, [m.label for m in maps if m.region_map is not None]
    )


@router.get(SESSIONS, name="sessions_page")
def sessions_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Sessions tab: every session with subject, date, its scans and Open in OHIF;
    Upload Session."""
    who = logged_in(principal)
    access = projects.get_project(db, who, project)
    view = present_project(request, access.project, access.role, who)
    sessions = [present_session(request, s) for s in lookup.list_sessions(db, who, project)]
    maps = model_maps(request, db, storage, mlmodels.list_models(db, who, project))
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab="sessions",
        sessions=sessions,
        viewer_installed=request.app.state.ohif_dist is not None,
        viewer_links={s.id: _viewer_links(view.id, s.study_instance_uid, maps) for s in sessions},
        can_manage=access.can_manage,
        upload_api=path_for(request, "api_upload_sessions", project=view.id),
        breadcrumbs=project_crumbs(request, view, Crumb("Sessions")),
    )
    return render(request, "imaging_sessions.html", context)


def _report(storage: LocalStorage, folder: DerivedFolder) -> ReportFigures | None:
    row = next((f for f in folder.files if f.name == REPORT_NAME), None)
    return stored_report_figures(storage, row.storage_key, row.size) if row is not None else None


@router.get(SESSIONS + "/{session}", name="session_page")
def session_page(
    request: Request,
    project: str,
    session: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """A session: scans, ROI collections with matched region names, derived results."""
    who = logged_in(principal)
    access = projects.get_project(db, who, project)
    view = present_project(request, access.project, access.role, who)
    found = lookup.get_session(db, who, project, session)
    shown = present_session(request, found, with_collections=True)
    maps = model_maps(request, db, storage, mlmodels.list_models(db, who, project))
    matches = {c.id: collection_matches(c.region_names, maps) for c in shown.collections}
    results: list[tuple[ScanView, list[tuple[DerivedFolderView, ReportFigures | None]]]] = []
    for scan, scan_view in zip(lookup.sorted_scans(found), shown.scans, strict=True):
        folders = derived.derived_folders_of(db, scan)
        if folders:
            results.append(
                (
                    scan_view,
                    [
                        (present_derived_folder(request, view.id, scan, f), _report(storage, f))
                        for f in folders
                    ],
                )
            )
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab="sessions",
        session=shown,
        collections=shown.collections,
        matches=matches,
        models=maps,
        results=results,
        viewer_installed=request.app.state.ohif_dist is not None,
        viewer_links=_viewer_links(view.id, shown.study_instance_uid, maps),
        preview_name=PREVIEW_NAME,
        can_manage=access.can_manage,
        breadcrumbs=project_crumbs(
            request,
            view,
            Crumb("Sessions", path_for(request, "sessions_page", project=view.id)),
            Crumb(found.label),
        ),
    )
    return render(request, "imaging_session.html", context)
