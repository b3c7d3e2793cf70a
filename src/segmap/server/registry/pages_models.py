"""Pages of models: the Machine Learning tab, the dashboard (+ Install Model), View Model.

Paths (XNAT's path through its Machine Learning plugin)::

    /projects/{p}/machine-learning                     Machine Learning tab
    /projects/{p}/machine-learning/dashboard           Installed Models (+ Install Model)
    /projects/{p}/machine-learning/models/{m}          View Model (+ Manage Files dialog)
    /projects/{p}/machine-learning/models/{m}/delete   Delete Model (form)

The Manage Files dialog (``static/manage_files.js``) talks to the REST API with the
session cookie and the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.imaging.budget import MAX_SPACING_MM, MIN_SPACING_MM
from segmap.server.errors import ServiceError, Unprocessable
from segmap.server.registry import mlmodels, projects
from segmap.server.registry.map_views import region_map_view
from segmap.server.registry.navigation import (
    MODELS_TAB,
    model_crumbs,
    model_tabs,
    project_crumbs,
    project_tabs,
)
from segmap.server.registry.presenters import present_model, present_project
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, get_storage, optional_principal
from segmap.server.web.forms import field, logged_in, posted_form, take_back
from segmap.server.web.pages import Crumb, page_context, redirect, render, set_flash
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)

ML = "/projects/{project}/machine-learning"
MODEL = ML + "/models/{model}"


def _number(text: str, what: str) -> float:
    """A spacing field of the form, refused in the form's words (the service's message
    names the API's ``voxel_spacing`` field, which this page does not show)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise Unprocessable(f"the {what} {text!r} is not a number of mm, e.g. 1.5") from None
    if not math.isfinite(value) or value < MIN_SPACING_MM or value > MAX_SPACING_MM:
        raise Unprocessable(
            f"the {what} must be from {MIN_SPACING_MM:g} mm to {MAX_SPACING_MM:g} mm "
            f"(it is {text.strip()})"
        )
    return value


@router.get(ML, name="machine_learning_tab")
def machine_learning_tab(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The project's Machine Learning tab: what models are, and the way to the dashboard."""
    who = logged_in(principal)
    access = projects.get_project(db, who, project)
    view = present_project(request, access.project, access.role, who)
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab=MODELS_TAB,
        models=[present_model(request, m) for m in mlmodels.list_models(db, who, project)],
        dashboard_url=path_for(request, "dashboard_page", project=view.id),
        breadcrumbs=project_crumbs(request, view, Crumb("Machine Learning")),
    )
    return render(request, "machine_learning.html", context)


def _dashboard(
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
        active_tab=MODELS_TAB,
        models=[present_model(request, m) for m in mlmodels.list_models(db, who, project)],
        can_manage=access.can_manage,
        install_url=path_for(request, "install_model", project=view.id),
        form=form or {},
        form_error=form_error,
        breadcrumbs=project_crumbs(
            request,
            view,
            Crumb("Machine Learning", path_for(request, "machine_learning_tab", project=view.id)),
            Crumb("Machine Learning dashboard"),
        ),
    )
    return render(request, "dashboard.html", context, status_code=status_code)


@router.get(ML + "/dashboard", name="dashboard_page")
def dashboard_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Machine Learning dashboard: Installed Models, and Install Model for owners."""
    return _dashboard(request, db, logged_in(principal), project)


@router.post(ML + "/models", name="install_model")
async def install_model(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Install Model form: create the model, then show it."""
    who, form = await posted_form(request, principal)
    fields = {
        key: field(form, key)
        for key in ("label", "description", "spacing_x", "spacing_y", "spacing_z")
    }
    try:
        spacing = [_number(fields[f"spacing_{axis}"], f"voxel spacing {axis}") for axis in "xyz"]
        model = mlmodels.create_model(
            db,
            who,
            project,
            label=fields["label"].strip(),
            description=fields["description"].strip(),
            voxel_spacing=spacing,
        )
    except ServiceError as exc:
        take_back(db, exc, also_404=True)
        return _dashboard(request, db, who, project, fields, exc.message, exc.status_code)
    set_flash(request, "success", f"Installed the model {model.label}.")
    return redirect(present_model(request, model).url)


@router.get(MODEL, name="model_page")
def model_page(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """View Model: details, the region map as a table, Actions, the Manage Files dialog."""
    who = logged_in(principal)
    access, row = mlmodels.get_model(db, who, project, model)
    view = present_project(request, access.project, access.role, who)
    mview = present_model(request, row)
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(request, view.id),
        active_tab=MODELS_TAB,
        model=mview,
        model_tabs=model_tabs(request, view.id, row.label),
        active_model_tab="model",
        region_map=region_map_view(request, db, storage, who, row),
        can_manage=access.can_manage,
        resources_api=path_for(request, "api_list_resources", project=view.id, model=row.label),
        editor_url=path_for(request, "editor_page", project=view.id, model=row.label),
        delete_url=path_for(request, "delete_model", project=view.id, model=row.label),
        dashboard_url=path_for(request, "dashboard_page", project=view.id),
        breadcrumbs=model_crumbs(request, view, mview),
    )
    return render(request, "model.html", context)


@router.post(MODEL + "/delete", name="delete_model")
async def delete_model(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Delete Model (after the confirmation in the page): the model and all its files."""
    who, _form = await posted_form(request, principal)
    _access, row = mlmodels.get_model(db, who, project, model)
    label = row.label
    mlmodels.delete_model(db, storage, who, project, label)
    set_flash(request, "success", f"Deleted the model {label} and its files.")
    return redirect(path_for(request, "dashboard_page", project=project))
