"""Machine-learning models installed in a project."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.imaging.budget import VoxelBudgetError, check_model_spacing
from segmap.server.db.registry import MLModel
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.names import (
    MAX_DESCRIPTION_CHARS,
    check_display_text,
    check_model_label,
    looks_numeric,
    name_key,
    numeric_id,
)
from segmap.server.registry.access import ProjectAccess, project_access, require_manage
from segmap.server.storage import Storage
from segmap.server.web.auth import Principal


def list_models(db: Session, principal: Principal | None, project_id: str) -> list[MLModel]:
    """The project's models, by label."""
    access = project_access(db, principal, project_id)
    return list(
        db.scalars(
            select(MLModel)
            .where(MLModel.project_id == access.project.id)
            .options(selectinload(MLModel.created_by))
            .order_by(MLModel.label_key)
        )
    )


def find_model(db: Session, access: ProjectAccess, model_ref: str | int) -> MLModel:
    """A model of an accessible project by numeric id or by label (case-insensitive).

    A reference written only with digits is an id (labels are never all digits); one that
    is not a valid id (``²``, ``１``, 30 digits) names no model.
    """
    ref = str(model_ref)
    model: MLModel | None = None
    if looks_numeric(ref):
        model_id = numeric_id(ref)
        model = db.get(MLModel, model_id) if model_id is not None else None
        if model is not None and model.project_id != access.project.id:
            model = None
    else:
        model = db.scalar(
            select(MLModel).where(
                MLModel.project_id == access.project.id, MLModel.label_key == name_key(ref)
            )
        )
    if model is None:
        raise NotFound(f"project {access.project.id!r} has no model {ref!r}")
    return model


def get_model(
    db: Session, principal: Principal | None, project_id: str, model_ref: str | int
) -> tuple[ProjectAccess, MLModel]:
    """A model and the caller's access to its project."""
    access = project_access(db, principal, project_id)
    return access, find_model(db, access, model_ref)


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """A model's voxel spacing (x, y, z in mm), else ``Unprocessable``.

    The rule of :func:`segmap.imaging.budget.check_model_spacing`: three finite numbers
    from 0.01 to 100 mm, and not so fine that a 500 mm field of view would exceed the
    voxel budget (every conversion of the model would then be refused).
    """
    try:
        return check_model_spacing(list(spacing) if spacing is not None else [])
    except VoxelBudgetError as exc:
        raise Unprocessable(f"voxel_spacing: {exc}") from None


def create_model(
    db: Session,
    principal: Principal | None,
    project_id: str,
    *,
    label: str,
    voxel_spacing: Sequence[float],
    description: str = "",
    automation: bool = False,
) -> MLModel:
    """Install a model in a project (committed). Owners and admins only; labels unique."""
    access = project_access(db, principal, project_id)
    require_manage(access, "create models")
    check_model_label(label)
    description = check_display_text(
        description or "", "description", MAX_DESCRIPTION_CHARS, required=False, multiline=True
    )
    sx, sy, sz = check_spacing(voxel_spacing)
    key = name_key(label)
    clash = db.scalar(
        select(MLModel).where(MLModel.project_id == access.project.id, MLModel.label_key == key)
    )
    if clash is not None:
        raise Conflict(
            f"project {access.project.id!r} already has a model labelled {clash.label!r}"
        )
    model = MLModel(
        project_id=access.project.id,
        label=label,
        label_key=key,
        description=description,
        spacing_x=sx,
        spacing_y=sy,
        spacing_z=sz,
        automation=bool(automation),
        created_by_id=access.principal.id,
    )
    db.add(model)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"a model labelled {label!r} was created at the same time") from None
    return model


def delete_model(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
) -> None:
    """Remove a model with its folders and files (committed). Owners and admins only."""
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "delete models")
    model_id = model.id
    db.delete(model)
    db.commit()
    # Files go after the commit: a crash in between leaves unreferenced files, never
    # rows pointing at missing ones.
    storage.delete_prefix(model_storage_prefix(model_id))


def set_automation(
    db: Session,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    automation: bool,
) -> MLModel:
    """Switch a model's automation on or off (committed). Owners and site admins.

    With it on, every ROI collection stored afterwards gets a job for this model;
    switching it on does not convert collections already stored (start a conversion for
    those).
    """
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "change a model's automation")
    model.automation = bool(automation)
    db.commit()
    return model


def model_storage_prefix(model_id: int) -> str:
    """Storage key prefix of a model's files."""
    return f"models/{model_id}"
