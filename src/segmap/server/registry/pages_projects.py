"""Pages of projects: the project list (+ New Project) and a project's Overview tab.

Paths::

    /projects                                          project list (+ New Project)
    /projects/{p}                                      Overview tab: details, Members
    /projects/{p}/members, /projects/{p}/members/remove   Add Member, Remove (forms)
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.db.registry import ROLES
from segmap.server.errors import ServiceError
from segmap.server.registry import mlmodels, projects
from segmap.server.registry.navigation import project_crumbs, project_tabs
from segmap.server.registry.presenters import present_model, present_project
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, optional_principal
from segmap.server.web.forms import field, logged_in, posted_form, take_back
from segmap.server.web.pages import (
    HOME_ROUTE,
    Crumb,
    page_context,
    redirect,
    render,
    sentence,
    set_flash,
)
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)


def _projects(
    request: Request,
    db: Session,
    who: Principal,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    views = [
        present_project(
            request, e.project, e.role, who, len(mlmodels.list_models(db, who, e.project.id))
        )
        for e in projects.list_projects(db, who)
    ]
    context = page_context(
        request,
        who,
        projects=views,
        can_create=projects.can_create_projects(who),
        form=form or {},
        form_error=form_error,
        breadcrumbs=[Crumb("Projects")],
    )
    return render(request, "projects.html", context, status_code=status_code)


@router.get("/projects", name=HOME_ROUTE)
def projects_page(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Every project the user belongs to (site admins: all), and the New Project form."""
    return _projects(request, db, logged_in(principal))


@router.post("/projects", name="new_project")
async def new_project(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The New Project form: create the project (the creator owns it), then show it."""
    who, form = await posted_form(request, principal)
    fields = {key: field(form, key).strip() for key in ("id", "name")}
    try:
        created = projects.create_project(db, who, fields["id"], fields["name"])
    except ServiceError as exc:
        take_back(db, exc)
        return _projects(request, db, who, fields, exc.message, exc.status_code)
    set_flash(request, "success", f"Created the project {created.name} ({created.id}).")
    return redirect(path_for(request, "project_page", project=created.id))


def _overview(
    request: Request,
    db: Session,
    who: Principal,
    project: str,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    access = projects.get_project(db, who, project)
    view = present_project(request, access.project, access.role, who)
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab="overview",
        members=projects.list_members(db, who, project),
        models=[present_model(request, m) for m in mlmodels.list_models(db, who, project)],
        can_manage=access.can_manage,
        roles=ROLES,
        add_member_url=path_for(request, "add_member", project=view.id),
        remove_member_url=path_for(request, "remove_member", project=view.id),
        form=form or {},
        form_error=form_error,
        breadcrumbs=project_crumbs(request, view),
    )
    return render(request, "project.html", context, status_code=status_code)


@router.get("/projects/{project}", name="project_page")
def project_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The project page, Overview tab: details and Members (+ Add Member for owners)."""
    return _overview(request, db, logged_in(principal), project)


@router.post("/projects/{project}/members", name="add_member")
async def add_member(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Add Member form: give a user a role (an existing member gets the new one)."""
    who, form = await posted_form(request, principal)
    fields = {key: field(form, key).strip() for key in ("username", "role")}
    try:
        added = projects.set_member(db, who, project, fields["username"], fields["role"])
    except ServiceError as exc:
        take_back(db, exc)  # a missing project raises its 404 again while re-rendering
        return _overview(request, db, who, project, fields, exc.message, exc.status_code)
    username, role = fields["username"], fields["role"]
    done = f"Added {username} as {role}." if added else f"{username} is now {role}."
    set_flash(request, "success", done)
    return redirect(path_for(request, "project_page", project=project))


@router.post("/projects/{project}/members/remove", name="remove_member")
async def remove_member(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Remove (after the confirmation in the page): take a user out of the project."""
    who, form = await posted_form(request, principal)
    username = field(form, "username").strip()
    try:
        projects.remove_member(db, who, project, username)
    except ServiceError as exc:
        take_back(db, exc)
        set_flash(request, "error", sentence(exc.message))
        return redirect(path_for(request, "project_page", project=project))
    set_flash(request, "success", f"Removed {username} from the project.")
    if username.casefold() == who.username.casefold() and not who.is_admin:
        return redirect(path_for(request, HOME_ROUTE))  # they left: its page is closed to them
    return redirect(path_for(request, "project_page", project=project))
