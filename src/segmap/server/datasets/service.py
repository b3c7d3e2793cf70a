"""Datasets as users see them: created by owners, read by every role of the project.

* :func:`create_dataset` — an owner (or site admin) queues a dataset of a model; the
  worker (:mod:`.worker`) freezes it.
* :func:`list_datasets`, :func:`get_dataset` — every project role reads them.
* :func:`open_frozen_dataset` — a ready dataset's manifest, QA and files, for downloads.
* :func:`delete_dataset` — an owner removes one (its row and its store).

Who may see what is the project's rule (:func:`segmap.server.registry.access.project_access`),
as for every URL that names a project: 404 for a project that does not exist, 403 "you
are not a member of project ..." for one the caller is not in (docs/security.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.datasets.entries import Resolver
from segmap.datasets.errors import DatasetError
from segmap.datasets.folds import DEFAULT_FOLDS, DEFAULT_SEED
from segmap.datasets.freeze import DEFAULT_ID, FrozenDataset
from segmap.datasets.naming import MAX_ID, check_dataset_name
from segmap.datasets.selection import CaseFilter
from segmap.datasets.store import open_frozen
from segmap.server.datasets.freezer import store_key
from segmap.server.db.datasets import DATASET_QUEUED, DATASET_READY, Dataset
from segmap.server.db.registry import MLModel
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.names import name_key
from segmap.server.registry.access import ProjectAccess, require_manage
from segmap.server.registry.mlmodels import get_model
from segmap.server.registry.regionmap import REGION_MAP_FILENAME, has_region_map
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal

MAX_FOLDS = 100
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is to be: its name and how its cases are chosen and split.

    ``filter`` is the JSON filter (``{"subject": ["PAT0*"], "annotator": "carol"}``);
    ``dataset_id`` is nnU-Net's dataset number.
    """

    name: str
    filter: Mapping[str, Any] | None = field(default=None)
    resampled: bool = False
    folds: int = DEFAULT_FOLDS
    seed: int = DEFAULT_SEED
    dataset_id: int = DEFAULT_ID


def model_access(
    db: Session, principal: Principal | None, project_id: str, model_ref: str | int
) -> tuple[ProjectAccess, MLModel]:
    """The model and the caller's access (401, 403 or 404 as for the model itself)."""
    return get_model(db, principal, project_id, model_ref)


def _whole(value: int, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Unprocessable(
            f"{name} must be a whole number from {low} to {high}, got {value!r}", field=name
        )
    return value


def check_spec(spec: DatasetSpec) -> CaseFilter:
    """The spec's filter, once every field checks out; ``Unprocessable`` naming the field."""
    try:
        check_dataset_name(spec.name)
    except DatasetError as exc:
        raise Unprocessable(f"name: {exc}", field="name") from None
    _whole(spec.folds, 2, MAX_FOLDS, "folds")
    _whole(spec.seed, 0, MAX_SEED, "seed")
    _whole(spec.dataset_id, 1, MAX_ID, "dataset_id")
    try:
        return CaseFilter.from_dict(spec.filter, where="filter")
    except DatasetError as exc:
        raise Unprocessable(str(exc), field="filter") from None


def create_dataset(
    db: Session,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    spec: DatasetSpec,
) -> Dataset:
    """Queue a dataset of the model (committed). Owners and site admins.

    Raises ``Unprocessable`` (a field, or a model without a region map) and ``Conflict``
    (the model has a dataset of that name).
    """
    access, model = model_access(db, principal, project_id, model_ref)
    require_manage(access, "create datasets")
    case_filter = check_spec(spec)
    if not has_region_map(db, model):
        raise Unprocessable(
            f"model {model.label!r} has no region map yet; upload {REGION_MAP_FILENAME} "
            "into one of its folders (Manage Files), convert its collections, then create "
            "the dataset"
        )
    if _find(db, model, spec.name) is not None:
        raise _taken(model, spec.name)
    row = Dataset(
        project_id=access.project.id,
        model_id=model.id,
        name=spec.name,
        name_key=name_key(spec.name),
        state=DATASET_QUEUED,
        filter=case_filter.to_dict(),
        resampled=spec.resampled,
        folds=spec.folds,
        seed=spec.seed,
        nnunet_id=spec.dataset_id,
        progress=0.0,
        stage="waiting to be frozen",
        attempts=0,
        created_by_id=access.principal.id,
    )
    db.add(row)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise _taken(model, spec.name) from None
    return row


def _taken(model: MLModel, name: str) -> Conflict:
    return Conflict(
        f"model {model.label!r} already has a dataset named {name!r}; choose another name "
        "(or delete that dataset first)",
        field="name",
    )


def _find(db: Session, model: MLModel, name: str) -> Dataset | None:
    return db.scalar(
        select(Dataset)
        .where(Dataset.model_id == model.id, Dataset.name_key == name_key(name))
        .options(selectinload(Dataset.model), selectinload(Dataset.created_by))
    )


def list_datasets(
    db: Session, principal: Principal | None, project_id: str, model_ref: str | int
) -> tuple[ProjectAccess, MLModel, list[Dataset]]:
    """The model's datasets, newest first (every project role)."""
    access, model = model_access(db, principal, project_id, model_ref)
    rows = db.scalars(
        select(Dataset)
        .where(Dataset.model_id == model.id)
        .options(selectinload(Dataset.model), selectinload(Dataset.created_by))
        .order_by(Dataset.id.desc())
    )
    return access, model, list(rows)


def get_dataset(
    db: Session, principal: Principal | None, project_id: str, model_ref: str | int, name: str
) -> tuple[ProjectAccess, MLModel, Dataset]:
    """One dataset of the model by name (case-insensitive; every project role)."""
    access, model = model_access(db, principal, project_id, model_ref)
    row = _find(db, model, name)
    if row is None:
        raise NotFound(f"model {model.label!r} has no dataset {name!r}")
    return access, model, row


def open_frozen_dataset(storage: LocalStorage, row: Dataset) -> tuple[FrozenDataset, Resolver]:
    """A ready dataset's manifest, QA and where its files are (no permission check: the
    caller got ``row`` from :func:`get_dataset`).

    Raises ``Conflict`` while it is not ready, ``NotFound`` when its store is gone.
    """
    if row.state != DATASET_READY or not row.store_key:
        raise Conflict(
            f"dataset {row.name!r} is {row.state}"
            + (f" ({row.error})" if row.error else "; download it once it is ready")
        )
    try:
        return open_frozen(store_path(storage, row))
    except DatasetError as exc:
        raise NotFound(
            f"the files of dataset {row.name!r} are missing from storage ({exc})"
        ) from None


def store_path(storage: LocalStorage, row: Dataset) -> Path:
    """Where a dataset's store is on local disk (it may not exist before it is ready)."""
    return storage.local_path(row.store_key or store_key(row.id))


def delete_dataset(
    db: Session,
    storage: LocalStorage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    name: str,
) -> None:
    """Delete a dataset and its store (committed). Owners and site admins.

    A dataset being frozen is deleted too; the freeze's result is then dropped.
    """
    access, _model, row = get_dataset(db, principal, project_id, model_ref, name)
    require_manage(access, "delete datasets")
    path = store_path(storage, row)
    db.delete(row)
    db.commit()
    shutil.rmtree(path, ignore_errors=True)
