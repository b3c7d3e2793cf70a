"""File-resource folders of a model (XNAT: resources): listing, creating, deleting.

Folder names are compared case-insensitively (``name_key``) but shown as created; a name
differing from an existing one only by case is refused rather than merged.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.server.db.registry import MLModel, ResourceFile, ResourceFolder
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.names import check_resource_name, name_key
from segmap.server.registry.access import ProjectAccess, require_manage
from segmap.server.registry.mlmodels import get_model
from segmap.server.storage import Storage
from segmap.server.web.auth import Principal


def list_resources(
    db: Session, principal: Principal | None, project_id: str, model_ref: str | int
) -> list[ResourceFolder]:
    """The model's folders (by name) with their files loaded (by name)."""
    _access, model = get_model(db, principal, project_id, model_ref)
    return list(
        db.scalars(
            select(ResourceFolder)
            .where(ResourceFolder.model_id == model.id)
            .options(selectinload(ResourceFolder.files).selectinload(ResourceFile.uploaded_by))
            .order_by(ResourceFolder.name_key)
        )
    )


def find_folder(db: Session, model: MLModel, name: str) -> ResourceFolder | None:
    return db.scalar(
        select(ResourceFolder).where(
            ResourceFolder.model_id == model.id, ResourceFolder.name_key == name_key(name)
        )
    )


def case_clash(what: str, wanted: str, existing: str) -> Unprocessable:
    return Unprocessable(
        f"a {what} named {existing!r} already exists here and {wanted!r} differs from it "
        f"only by case; use {existing!r} to replace it or choose another name"
    )


def get_folder(db: Session, model: MLModel, name: str) -> ResourceFolder:
    folder = find_folder(db, model, name)
    if folder is None or folder.name != name:
        raise NotFound(f"model {model.label!r} has no folder {name!r}")
    return folder


def create_folder(
    db: Session, principal: Principal | None, project_id: str, model_ref: str | int, name: str
) -> tuple[ResourceFolder, bool]:
    """Create a folder (committed); returns it and True, or the existing one and False."""
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "add folders")
    check_resource_name(name, "folder name")
    folder, created = folder_for_write(db, access, model, name)
    db.commit()
    return folder, created


def folder_for_write(
    db: Session, access: ProjectAccess, model: MLModel, name: str
) -> tuple[ResourceFolder, bool]:
    """Existing folder or a new one (flushed, not committed); safe against a racing insert."""
    for _ in range(2):
        existing = find_folder(db, model, name)
        if existing is not None:
            if existing.name != name:
                raise case_clash("folder", name, existing.name)
            return existing, False
        folder = ResourceFolder(
            model_id=model.id, name=name, name_key=name_key(name), created_by_id=access.principal.id
        )
        try:
            with db.begin_nested():
                db.add(folder)
        except IntegrityError:
            continue  # created by a concurrent request: read it on the next pass
        return folder, True
    raise Conflict(f"folder {name!r} is being changed by another request; retry")


def delete_folder(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    name: str,
) -> None:
    """Delete a folder and its files (committed). Owners and admins only."""
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "delete folders")
    folder = get_folder(db, model, name)
    keys = [f.storage_key for f in folder.files]
    db.delete(folder)
    db.commit()
    for key in keys:
        storage.delete(key)
