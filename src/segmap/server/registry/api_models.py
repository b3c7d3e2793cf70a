"""The models API under ``/api/v1``: installed models, their automation and region map."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.registry import mlmodels
from segmap.server.registry.presenters import present_model
from segmap.server.registry.regionmap import get_region_map
from segmap.server.registry.schemas import ModelIn, ModelOut, ModelPatchIn, RegionMapOut
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal
from segmap.server.web.deps import api_principal, get_db, get_storage
from segmap.server.web.schemas import ErrorOut, not_found

router = APIRouter(prefix="/api/v1", responses=not_found("project or model"), tags=["models"])

MODELS = "/projects/{project}/models"
MODEL = MODELS + "/{model}"


@router.get(MODELS, response_model=list[ModelOut], name="api_list_models")
def list_models(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[ModelOut]:
    """The project's installed models."""
    return [
        ModelOut.model_validate(present_model(request, m))
        for m in mlmodels.list_models(db, principal, project)
    ]


@router.post(MODELS, status_code=201, response_model=ModelOut, name="api_create_model")
def create_model(
    request: Request,
    project: str,
    body: ModelIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ModelOut:
    """Install a model (owners and admins). ``voxel_spacing`` is [x, y, z] in mm."""
    model = mlmodels.create_model(
        db,
        principal,
        project,
        label=body.label,
        description=body.description,
        voxel_spacing=body.voxel_spacing,
        automation=body.automation,
    )
    return ModelOut.model_validate(present_model(request, model))


@router.get(MODEL, response_model=ModelOut, name="api_get_model")
def get_model(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ModelOut:
    """One model, by numeric id or by label."""
    _access, found = mlmodels.get_model(db, principal, project, model)
    return ModelOut.model_validate(present_model(request, found))


@router.patch(MODEL, response_model=ModelOut, name="api_patch_model")
def patch_model(
    request: Request,
    project: str,
    model: str,
    body: ModelPatchIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ModelOut:
    """Switch the model's automation on or off (owners and site admins).

    With automation on, every ROI collection stored afterwards gets a job for this model.
    """
    found = mlmodels.set_automation(db, principal, project, model, body.automation)
    return ModelOut.model_validate(present_model(request, found))


@router.delete(MODEL, status_code=204, name="api_delete_model")
def delete_model(
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Remove a model with all its files (owners and admins)."""
    mlmodels.delete_model(db, storage, principal, project, model)
    return Response(status_code=204)


@router.get(
    MODEL + "/region-map",
    response_model=RegionMapOut,
    responses={409: {"model": ErrorOut, "description": "Folders hold different maps"}},
    name="api_region_map",
)
def region_map(
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """The model's region map as JSON."""
    return get_region_map(db, storage, principal, project, model).to_json()
