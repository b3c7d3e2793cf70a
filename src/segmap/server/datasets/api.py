"""The datasets API under ``/api/v1``: training datasets of a model.

Paths::

    POST    /projects/{p}/models/{m}/datasets                  {"name", "filter", "resampled",
                                                               "folds", "seed", "dataset_id"}
    GET     /projects/{p}/models/{m}/datasets                  the model's datasets
    GET     /projects/{p}/models/{m}/datasets/{name}           one, with manifest and QA
    GET     /projects/{p}/models/{m}/datasets/{name}/download?format=nnunet|monai|msd
    GET     /projects/{p}/models/{m}/datasets/{name}/qa/{picture}   a QA picture (PNG)
    DELETE  /projects/{p}/models/{m}/datasets/{name}

Creating answers 202: the dataset is frozen in the background (follow its ``url`` until
``state`` is ``ready`` or ``failed``). The download is a zip made while it is sent, from
the dataset's own frozen files: the same dataset gives the same bytes every time.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from segmap.datasets.export import layout_of
from segmap.datasets.layouts import FORMAT_NAMES
from segmap.datasets.zipstream import iter_zip
from segmap.server.datasets import service
from segmap.server.datasets.presenters import present_dataset, present_frozen
from segmap.server.datasets.schemas import DatasetDetailOut, DatasetIn, DatasetOut
from segmap.server.datasets.service import DatasetSpec
from segmap.server.db.datasets import DATASET_READY
from segmap.server.errors import NotFound, Unprocessable
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal
from segmap.server.web.deps import api_principal, get_db, get_storage
from segmap.server.web.schemas import ErrorOut, not_found
from segmap.server.web.transfer import content_disposition

router = APIRouter(
    prefix="/api/v1", responses=not_found("project, model or dataset"), tags=["datasets"]
)

DATASETS = "/projects/{project}/models/{model}/datasets"
DATASET = DATASETS + "/{name}"
_PICTURE = re.compile(r"label_[0-9]{3,5}\.png")


def wake_worker(request: Request) -> None:
    """Tell the dataset worker a dataset waits (it polls otherwise)."""
    worker = getattr(request.app.state, "dataset_worker", None)
    if worker is not None:
        worker.wake()


@router.post(
    DATASETS,
    status_code=202,
    response_model=DatasetOut,
    responses={
        409: {"model": ErrorOut, "description": "The model has a dataset of that name"},
        422: {"model": ErrorOut, "description": "A field is not valid (named), or no map"},
    },
    name="api_create_dataset",
)
def create_dataset(
    request: Request,
    project: str,
    model: str,
    body: DatasetIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Freeze a dataset of the model's successful conversions (owners and site admins).

    Answers 202 with the dataset; its ``url`` (also the ``Location`` header) shows its
    state, then its manifest and QA report once ``ready``.
    """
    spec = DatasetSpec(
        name=body.name,
        filter=body.filter,
        resampled=body.resampled,
        folds=body.folds,
        seed=body.seed,
        dataset_id=body.dataset_id,
    )
    row = service.create_dataset(db, principal, project, model, spec)
    view = present_dataset(request, row)
    wake_worker(request)
    out = DatasetOut.model_validate(view)
    return JSONResponse(
        out.model_dump(mode="json"), status_code=202, headers={"Location": view.url}
    )


@router.get(DATASETS, response_model=list[DatasetOut], name="api_list_datasets")
def list_datasets(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[DatasetOut]:
    """The model's datasets, newest first (every project role)."""
    _access, _model, rows = service.list_datasets(db, principal, project, model)
    return [DatasetOut.model_validate(present_dataset(request, r)) for r in rows]


@router.get(DATASET, response_model=DatasetDetailOut, name="api_get_dataset")
def get_dataset(
    request: Request,
    project: str,
    model: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> DatasetDetailOut:
    """One dataset; once ready, with its ``manifest``, ``qa`` report and ``qa_plots``."""
    _access, _model, row = service.get_dataset(db, principal, project, model, name)
    view = present_dataset(request, row)
    extra: dict[str, Any] = {}
    if row.state == DATASET_READY:
        frozen, _resolve = service.open_frozen_dataset(storage, row)
        extra = present_frozen(request, view, frozen).to_dict()
    return DatasetDetailOut.model_validate(
        {**DatasetOut.model_validate(view).model_dump(), **extra}
    )


@router.get(
    DATASET + "/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The dataset as a zip"},
        409: {"model": ErrorOut, "description": "The dataset is not ready"},
        422: {"model": ErrorOut, "description": "Unknown format"},
    },
    name="api_download_dataset",
)
def download_dataset(
    project: str,
    model: str,
    name: str,
    fmt: str = Query(default="nnunet", alias="format", description="nnunet, monai or msd"),
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> StreamingResponse:
    """The dataset in a training layout, as a zip made while it is sent (every role).

    nnU-Net v2 raw (``Dataset{NNN}_{name}/``), MONAI (``{name}/``) or the Decathlon's
    (``Task{NN}_{name}/``); each with ``segmap/manifest.json`` and ``segmap/qa.json``.
    """
    _access, _model, row = service.get_dataset(db, principal, project, model, name)
    if fmt not in FORMAT_NAMES:
        raise Unprocessable(
            f"format must be one of {', '.join(FORMAT_NAMES)}, got {fmt!r}", field="format"
        )
    frozen, resolve = service.open_frozen_dataset(storage, row)
    db.rollback()  # nothing more to read: hold no transaction while the zip streams
    for case in frozen.manifest.cases:
        for record in (case.image, case.mask):
            if not resolve(record).is_file():
                raise NotFound(
                    f"dataset {row.name!r} lost the file of case {case.name} from storage; "
                    "create the dataset again"
                )
    layout = layout_of(frozen, fmt, resolve)
    headers = {
        "Content-Disposition": content_disposition(f"{layout.root}.zip"),
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(
        iter_zip(layout.entries, layout.root), media_type="application/zip", headers=headers
    )


@router.get(
    DATASET + "/qa/{picture}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "A region's volumes"}},
    name="api_dataset_plot",
)
def dataset_plot(
    project: str,
    model: str,
    name: str,
    picture: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """One region's QA picture (``label_NNN.png``, NNN the label value)."""
    _access, _model, row = service.get_dataset(db, principal, project, model, name)
    path = service.store_path(storage, row) / "qa" / picture
    if row.state != DATASET_READY or not _PICTURE.fullmatch(picture) or not path.is_file():
        raise NotFound(f"dataset {row.name!r} has no QA picture {picture!r}")
    return Response(
        path.read_bytes(),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.delete(DATASET, status_code=204, name="api_delete_dataset")
def delete_dataset(
    project: str,
    model: str,
    name: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Delete the dataset and its frozen files (owners and site admins)."""
    service.delete_dataset(db, storage, principal, project, model, name)
    return Response(status_code=204)
