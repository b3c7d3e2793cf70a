"""Machine-learning models installed in a project."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.server.db.registry import MLModel
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.names import check_model_label, name_key
from segmap.server.registry.access import ProjectAccess, project_access, require_manage
from segmap.server.storage import Storage
from segmap.server.web.auth import Principal

MAX_SPACING_MM = 1000.0


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
    """A model of an accessible project by numeric id or by label (case-insensitive)."""
    ref = str(model_ref)
    if ref.isdigit():
        model = db.get(MLModel, int(ref))
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
    """Three finite positive numbers (x, y, z in mm), else ``Unprocessable``."""
    values = list(spacing) if spacing is not None else []
    if len(values) != 3:
        raise Unprocessable(f"voxel_spacing needs three numbers [x, y, z] in mm; got {len(values)}")
    out = []
    for axis, v in zip("xyz", values, strict=True):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise Unprocessable(f"voxel_spacing {axis} = {v!r} is not a number") from None
        if not math.isfinite(f) or f <= 0 or f > MAX_SPACING_MM:
            raise Unprocessable(
                f"voxel_spacing {axis} = {v!r} must be greater than 0 and at most "
                f"{MAX_SPACING_MM:g} mm"
            )
        out.append(f)
    return (out[0], out[1], out[2])


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
        description=description or "",
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
