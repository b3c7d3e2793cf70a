"""The project's Archive page (owners and site admins): connect, test, follow, import.

Paths::

    /projects/{p}/archive              the connection form, the follower's state, what
                                       was imported, refused or pushed; Import by hand
    /projects/{p}/archive/save         Save (form post)
    /projects/{p}/archive/test         Test connection with the values typed (form post)
    /projects/{p}/archive/disconnect   Disconnect (form post, after a confirmation)
    /projects/{p}/archive/import       Import a study or series now (form post)

Forms post with the CSRF token; a refused form is shown again with the reason, the
password field always empty (a blank password keeps the stored one).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from segmap.server.archive import connections, manual
from segmap.server.archive.api import box_of
from segmap.server.archive.connections import ConnectionSettings
from segmap.server.archive.diagnose import Diagnosis, test_connection
from segmap.server.archive.filters import FILTER_KEYWORDS
from segmap.server.db.archive import ARCHIVE_KINDS
from segmap.server.errors import ServiceError, Unprocessable
from segmap.server.registry.navigation import project_crumbs, project_tabs
from segmap.server.registry.presenters import present_project
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, optional_principal
from segmap.server.web.forms import field, logged_in, posted_form, take_back
from segmap.server.web.pages import Crumb, format_time, page_context, redirect, render, set_flash
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    db: Session,
    who: Principal,
    project: str,
    *,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    diagnosis: Diagnosis | None = None,
    status_code: int = 200,
) -> Response:
    access, row = connections.find_connection(db, who, project)
    view = present_project(request, access.project, access.role, who)
    state = connections.present_connection(db, row) if row is not None else None
    if form is None:
        form = {
            "kind": "orthanc",
            "url": "",
            "username": "",
            "filter": "",
            "push_masks": "",
            "prefetch_images": "",
        }
        if state is not None:
            form = {
                "kind": state.kind,
                "url": state.url,
                "username": state.username,
                "filter": json.dumps(state.filter) if state.filter else "",
                "push_masks": "on" if state.push_masks else "",
                "prefetch_images": "on" if state.prefetch_images else "",
            }
    urls = {
        name: path_for(request, f"archive_{name}", project=view.id)
        for name in ("save", "test", "disconnect", "import_now")
    }
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab="overview",
        state=state,
        form=form,
        form_error=form_error,
        diagnosis=diagnosis,
        kinds=ARCHIVE_KINDS,
        filter_keywords=FILTER_KEYWORDS,
        urls=urls,
        format_time=format_time,
        breadcrumbs=project_crumbs(request, view, Crumb("Archive")),
    )
    return render(request, "archive.html", context, status_code=status_code)


@router.get("/projects/{project}/archive", name="archive_page")
def archive_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Archive page (owners and site admins)."""
    return _page(request, db, logged_in(principal), project)


def _form_settings(form: Any) -> tuple[dict[str, str], ConnectionSettings]:
    fields = {k: field(form, k).strip() for k in ("kind", "url", "username", "filter")}
    fields["push_masks"] = "on" if field(form, "push_masks") else ""
    fields["prefetch_images"] = "on" if field(form, "prefetch_images") else ""
    text = fields["filter"]
    try:
        parsed = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise Unprocessable(
            f"the filter is not JSON ({exc.msg} at character {exc.pos}); "
            'write for example {"StudyDescription": "LIVER*"}'
        ) from exc
    password = field(form, "password")
    new = ConnectionSettings(
        fields["kind"],
        fields["url"],
        fields["username"],
        password or None,
        bool(fields["push_masks"]),
        parsed,
        bool(fields["prefetch_images"]),
    )
    return fields, new


@router.post("/projects/{project}/archive/save", name="archive_save")
async def save(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Save: connect, or change the connection."""
    who, form = await posted_form(request, principal)
    fields: dict[str, str] = {}
    try:
        fields, new = _form_settings(form)
        connections.set_connection(db, who, project, new, box_of(request))
    except ServiceError as exc:
        take_back(db, exc)
        return _page(
            request,
            db,
            who,
            project,
            form=fields or None,
            form_error=exc.message,
            status_code=exc.status_code,
        )
    set_flash(request, "success", "Saved: the archive is followed with these settings.")
    return redirect(path_for(request, "archive_page", project=project))


@router.post("/projects/{project}/archive/test", name="archive_test")
async def test(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Test connection with the values in the form (a blank password: the stored one)."""
    who, form = await posted_form(request, principal)
    fields: dict[str, str] = {}
    try:
        fields, new = _form_settings(form)
        target = connections.settings_to_test(db, who, project, new, box_of(request))
        found = await run_in_threadpool(test_connection, *target)
    except ServiceError as exc:
        take_back(db, exc)
        return _page(
            request,
            db,
            who,
            project,
            form=fields or None,
            form_error=exc.message,
            status_code=exc.status_code,
        )
    return _page(request, db, who, project, form=fields, diagnosis=found)


@router.post("/projects/{project}/archive/disconnect", name="archive_disconnect")
async def disconnect(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Disconnect (after the confirmation in the page)."""
    who, _form = await posted_form(request, principal)
    connections.delete_connection(db, who, project)
    set_flash(request, "success", "Disconnected: the archive is no longer followed.")
    return redirect(path_for(request, "archive_page", project=project))


@router.post("/projects/{project}/archive/import", name="archive_import_now")
async def import_now(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Import by hand: a study or series UID, queued for the follower."""
    who, form = await posted_form(request, principal)
    uid, level = field(form, "uid").strip(), field(form, "level")
    studies, series = ([uid], []) if level != "series" else ([], [uid])
    try:
        row = manual.queue_import(db, who, project, studies, series)
    except ServiceError as exc:
        take_back(db, exc)
        return _page(request, db, who, project, form_error=exc.message, status_code=exc.status_code)
    set_flash(request, "success", f"Import {row.id} queued: {uid}.")
    return redirect(path_for(request, "archive_page", project=project))
