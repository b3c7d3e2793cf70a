"""Pages of datasets: the Datasets tab of a model, with the create form, and a dataset's
page with its QA report and downloads.

Paths (under the model's page)::

    /projects/{p}/machine-learning/models/{m}/datasets                the list (+ form)
    /projects/{p}/machine-learning/models/{m}/datasets/{name}         one dataset
    /projects/{p}/machine-learning/models/{m}/datasets/{name}/delete  Delete (form)

The forms post with the page's CSRF token and go through the same service as the API;
a page of a dataset that is still freezing refreshes itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.datasets import service
from segmap.server.datasets.api import wake_worker
from segmap.server.datasets.presenters import present_dataset, present_frozen
from segmap.server.datasets.service import DatasetSpec
from segmap.server.db.datasets import DATASET_READY
from segmap.server.errors import ServiceError, Unprocessable
from segmap.server.registry.navigation import model_crumbs, model_tabs
from segmap.server.registry.presenters import present_model, present_project
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, get_storage, optional_principal
from segmap.server.web.forms import field, logged_in, posted_form, take_back
from segmap.server.web.pages import Crumb, page_context, redirect, render, set_flash
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)

DATASETS = "/projects/{project}/machine-learning/models/{model}/datasets"
DATASET = DATASETS + "/{name}"
FILTER_FIELDS = (
    ("subject", "Subjects (PatientID)"),
    ("session", "Sessions"),
    ("collection", "ROI collections"),
    ("annotator", "Annotators (who uploaded)"),
)
_NUMBERS = {"dataset_id": "nnU-Net dataset number", "folds": "folds", "seed": "seed"}


def _whole(text: str, key: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise Unprocessable(
            f"the {_NUMBERS[key]} {text.strip()!r} is not a whole number", field=key
        ) from None


def _spec(fields: dict[str, str]) -> DatasetSpec:
    """The form's fields as a dataset spec (filter patterns separated by commas)."""
    patterns = {
        key: [p.strip() for p in fields[key].split(",") if p.strip()]
        for key, _label in FILTER_FIELDS
    }
    return DatasetSpec(
        name=fields["name"].strip(),
        filter={k: v for k, v in patterns.items() if v},
        resampled=bool(fields["resampled"]),
        folds=_whole(fields["folds"], "folds"),
        seed=_whole(fields["seed"], "seed"),
        dataset_id=_whole(fields["dataset_id"], "dataset_id"),
    )


def _context(
    request: Request, db: Session, who: Principal, project: str, model: str, **values: Any
) -> tuple[dict[str, Any], Any]:
    """What both pages show: the project, the model, its tabs and breadcrumbs."""
    access, model_row, rows = service.list_datasets(db, who, project, model)
    view = present_project(request, access.project, access.role, who)
    mview = present_model(request, model_row)
    context = page_context(
        request,
        who,
        project=view,
        model=mview,
        model_tabs=model_tabs(request, view.id, model_row.label),
        active_model_tab="datasets",
        can_manage=access.can_manage,
        datasets=[present_dataset(request, r) for r in rows],
        **values,
    )
    return context, (view, mview)


def _list_page(
    request: Request,
    db: Session,
    who: Principal,
    project: str,
    model: str,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    context, (view, mview) = _context(
        request,
        db,
        who,
        project,
        model,
        form=form or {},
        form_error=form_error,
        filter_fields=FILTER_FIELDS,
        create_url=path_for(request, "create_dataset_form", project=project, model=model),
    )
    context["breadcrumbs"] = model_crumbs(request, view, mview, Crumb("Datasets"))
    return render(request, "datasets.html", context, status_code=status_code)


@router.get(DATASETS, name="datasets_page")
def datasets_page(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The model's Datasets tab: its datasets, and the create form for owners."""
    return _list_page(request, db, logged_in(principal), project, model)


@router.post(DATASETS, name="create_dataset_form")
async def create_dataset_form(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The create form: queue the dataset, then show its page."""
    who, form = await posted_form(request, principal)
    keys = ("name", "dataset_id", "folds", "seed", "resampled", *(k for k, _ in FILTER_FIELDS))
    fields = {key: field(form, key) for key in keys}
    try:
        row = service.create_dataset(db, who, project, model, _spec(fields))
    except ServiceError as exc:
        take_back(db, exc, also_404=True)
        return _list_page(request, db, who, project, model, fields, exc.message, exc.status_code)
    wake_worker(request)
    set_flash(request, "success", f"Dataset {row.name} is queued; it is frozen in a moment.")
    return redirect(present_dataset(request, row).page_url)


@router.get(DATASET, name="dataset_page")
def dataset_page(
    request: Request,
    project: str,
    model: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """One dataset: its state, its QA report (tables and pictures) and its downloads."""
    who = logged_in(principal)
    _access, _model, row = service.get_dataset(db, who, project, model, name)
    dataset = present_dataset(request, row)
    frozen = None
    if row.state == DATASET_READY:
        found, _resolve = service.open_frozen_dataset(storage, row)
        frozen = present_frozen(request, dataset, found)
    context, (view, mview) = _context(
        request,
        db,
        who,
        project,
        model,
        dataset=dataset,
        frozen=frozen,
        delete_url=path_for(
            request, "delete_dataset_form", project=project, model=model, name=row.name
        ),
    )
    context["breadcrumbs"] = model_crumbs(
        request,
        view,
        mview,
        Crumb("Datasets", path_for(request, "datasets_page", project=view.id, model=mview.label)),
        Crumb(row.name),
    )
    return render(request, "dataset.html", context)


@router.post(DATASET + "/delete", name="delete_dataset_form")
async def delete_dataset_form(
    request: Request,
    project: str,
    model: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Delete the dataset (after the page's confirmation), then show the list."""
    who, _form = await posted_form(request, principal)
    service.delete_dataset(db, storage, who, project, model, name)
    set_flash(request, "success", f"Deleted the dataset {name}.")
    return redirect(path_for(request, "datasets_page", project=project, model=model))
