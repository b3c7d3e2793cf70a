"""Files in the resource folders of a model: upload, read, download, delete.

Upload order, so that no failure or race leaves a torn or mismatched file: the body is
streamed to a staging file (hashed, size-checked) outside any database transaction; the
staged file is renamed to a fresh storage key; the file row is inserted or switched to
that key in one transaction; only after the commit is the replaced object deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segmap.server.db.base import utcnow
from segmap.server.db.engine import read_first
from segmap.server.db.registry import ResourceFile, ResourceFolder
from segmap.server.errors import Conflict, NotFound
from segmap.server.names import check_resource_name, name_key
from segmap.server.registry.access import ProjectAccess, require_manage
from segmap.server.registry.folders import case_clash, find_folder, folder_for_write, get_folder
from segmap.server.registry.mlmodels import get_model, model_storage_prefix
from segmap.server.registry.regionmap import is_region_map_name, parse_region_map_upload
from segmap.server.storage import StagedFile, Storage, new_key
from segmap.server.web.auth import Principal


@dataclass(frozen=True)
class SavedFile:
    """Result of an upload: the file row and whether it was new (False: replaced)."""

    file: ResourceFile
    folder: ResourceFolder
    created: bool


def _find_file(db: Session, folder: ResourceFolder, name: str) -> ResourceFile | None:
    return db.scalar(
        select(ResourceFile).where(
            ResourceFile.folder_id == folder.id, ResourceFile.name_key == name_key(name)
        )
    )


def _get_file(db: Session, folder: ResourceFolder, name: str) -> ResourceFile:
    found = _find_file(db, folder, name)
    if found is None or found.name != name:
        raise NotFound(f"folder {folder.name!r} has no file {name!r}")
    return found


def prepare_upload(
    db: Session,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    folder_name: str,
    file_name: str,
) -> None:
    """Check, before receiving any bytes, that this upload would be accepted.

    Raises the same errors ``store_staged`` would for permissions and names.
    """
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "upload files")
    check_resource_name(folder_name, "folder name")
    check_resource_name(file_name, "file name")
    folder = find_folder(db, model, folder_name)
    if folder is None:
        return
    if folder.name != folder_name:
        raise case_clash("folder", folder_name, folder.name)
    existing = _find_file(db, folder, file_name)
    if existing is not None and existing.name != file_name:
        raise case_clash("file", file_name, existing.name)


def store_staged(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    folder_name: str,
    file_name: str,
    staged: StagedFile,
) -> SavedFile:
    """Place a fully received upload (committed). The staged file is consumed either way.

    Creates the folder when missing; replaces a file of the same name. A region map is
    validated first and refused with every problem (nothing stored).
    """
    placed_key: str | None = None
    try:
        check_resource_name(folder_name, "folder name")
        check_resource_name(file_name, "file name")
        read_first(db)
        access, model = get_model(db, principal, project_id, model_ref)
        require_manage(access, "upload files")
        model_id = model.id
        if is_region_map_name(file_name):
            parse_region_map_upload(staged.path.read_bytes(), f"{folder_name}/{file_name}")
        # Place the bytes outside any transaction (on SQLite a write transaction holds the
        # database lock); the key is new, so nothing can see it until the row points at it.
        db.rollback()
        placed_key = new_key(model_storage_prefix(model_id))
        storage.commit(staged, placed_key)
        # Check again inside the write transaction: roles or the model may have changed.
        access, model = get_model(db, principal, project_id, model_ref)
        require_manage(access, "upload files")
        folder, _ = folder_for_write(db, access, model, folder_name)
        row, created, old_key = _point_file_at(db, access, folder, file_name, staged, placed_key)
        db.commit()
    except BaseException:
        db.rollback()
        storage.discard(staged)
        if placed_key is not None:
            storage.delete(placed_key)
        raise
    if old_key is not None:
        storage.delete(old_key)
    return SavedFile(file=row, folder=folder, created=created)


def _point_file_at(
    db: Session,
    access: ProjectAccess,
    folder: ResourceFolder,
    name: str,
    staged: StagedFile,
    key: str,
) -> tuple[ResourceFile, bool, str | None]:
    """Insert the file row or switch the existing one to ``key``; returns the old key."""
    for _ in range(3):
        existing = db.scalar(
            select(ResourceFile)
            .where(ResourceFile.folder_id == folder.id, ResourceFile.name_key == name_key(name))
            .with_for_update()
        )
        if existing is not None:
            if existing.name != name:
                raise case_clash("file", name, existing.name)
            old_key = existing.storage_key
            existing.storage_key = key
            existing.size = staged.size
            existing.sha256 = staged.sha256
            existing.uploaded_by_id = access.principal.id
            existing.uploaded_at = utcnow()
            return existing, False, old_key
        row = ResourceFile(
            folder_id=folder.id,
            name=name,
            name_key=name_key(name),
            size=staged.size,
            sha256=staged.sha256,
            storage_key=key,
            uploaded_by_id=access.principal.id,
        )
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            continue  # a concurrent upload inserted it first: replace theirs
        return row, True, None
    raise Conflict(f"file {name!r} is being uploaded by several requests at once; retry")


def save_file(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    folder_name: str,
    file_name: str,
    source: BinaryIO | Iterable[bytes] | bytes,
    max_bytes: int,
) -> SavedFile:
    """Upload from a file object, an iterable of chunks or bytes (committed).

    Ends the session's current transaction before copying, so no database lock is held
    while bytes move.
    """
    read_first(db)
    prepare_upload(db, principal, project_id, model_ref, folder_name, file_name)
    db.rollback()
    with storage.stage(max_bytes) as writer:
        writer.write_from(source)
        staged = writer.finish()
    return store_staged(
        db, storage, principal, project_id, model_ref, folder_name, file_name, staged
    )


def get_file(
    db: Session,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    folder_name: str,
    file_name: str,
) -> ResourceFile:
    """A file's row (name, size, sha256, ...) for a reader."""
    _access, model = get_model(db, principal, project_id, model_ref)
    return _get_file(db, get_folder(db, model, folder_name), file_name)


def open_file(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    folder_name: str,
    file_name: str,
) -> tuple[ResourceFile, BinaryIO]:
    """A file's row and an open handle on its bytes (the caller closes it).

    If the file is replaced between reading the row and opening the object, the row is
    read again, so the bytes always match the size and SHA-256 returned.
    """
    for _ in range(3):
        row = get_file(db, principal, project_id, model_ref, folder_name, file_name)
        try:
            return row, storage.open(row.storage_key)
        except FileNotFoundError:
            db.rollback()  # see the replacing transaction's row on the next pass
    raise NotFound(f"the content of {folder_name}/{file_name} is missing from storage")


def delete_file(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    folder_name: str,
    file_name: str,
) -> None:
    """Delete a file (committed). Owners and admins only."""
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "delete files")
    row = _get_file(db, get_folder(db, model, folder_name), file_name)
    key = row.storage_key
    db.delete(row)
    db.commit()
    storage.delete(key)
