"""Derived resources: folders of files that jobs write onto a scan, one folder per model.

Semantics for the jobs that write them (``replace_derived_resource``):

* A folder is replaced **whole**: after the call it holds exactly the files given, and
  files of the previous version that are not given again are gone.
* Readers see the old version or the new one, never a mix: the new files are placed in a
  fresh storage prefix beside the old one (``scans/{scan}/derived/{version}/``), then
  the folder row is switched to that prefix and its file rows replaced in one
  transaction (the "rename"). Only after the commit is the old prefix deleted.
* A failure before the commit (a missing file, a full disk, a database error) deletes
  what was placed and leaves the old version exactly as it was; the error propagates.
* A crash between placing and committing leaves an unreferenced prefix, which
  ``sweep_unreferenced`` (or the next replacement of nothing) never shows to anyone;
  ``sweep_unreferenced`` deletes such leftovers.
* Two jobs replacing the same folder at once: the later commit wins whole.

The folder label names the model (jobs pass the model's label, and ``model`` to link
it). Reading needs project membership; writing is a system action with no caller.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from segmap.server.db.base import utcnow
from segmap.server.db.imaging import DerivedFile, DerivedFolder, Instance, RoiCollection, Scan
from segmap.server.db.registry import MLModel
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.imaging.lookup import get_scan
from segmap.server.names import check_resource_name, name_key
from segmap.server.settings import DEFAULT_MAX_UPLOAD_BYTES
from segmap.server.storage import LocalStorage, Storage
from segmap.server.web.auth import Principal
from segmap.server.web.transfer import MAX_FILENAME_CHARS, safe_filename

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def derived_prefix(scan_id: int) -> str:
    """Storage prefix holding every version of every derived folder of a scan."""
    return f"scans/{scan_id}/derived"


def _file_key(prefix: str, index: int, name: str) -> str:
    # Readable on disk but always a valid key: index first, unsafe characters replaced.
    safe = _UNSAFE_KEY_CHARS.sub("_", name)[:120].strip("._") or "file"
    return f"{prefix}/{index:03d}-{safe}"


def _check_names(folder_label: str, names: list[str]) -> None:
    check_resource_name(folder_label, "folder label")
    if not names:
        raise Unprocessable(f"derived folder {folder_label!r}: give at least one file")
    seen: dict[str, str] = {}
    for name in names:
        check_resource_name(name, "file name")
        other = seen.setdefault(name_key(name), name)
        if other != name:
            raise Unprocessable(
                f"derived folder {folder_label!r}: {other!r} and {name!r} differ only by case"
            )


def replace_derived_resource(
    db: Session,
    storage: Storage,
    scan: Scan | int,
    folder_label: str,
    files: Mapping[str, Path],
    *,
    model: MLModel | int | None = None,
    max_file_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> DerivedFolder:
    """Make the scan's folder ``folder_label`` hold exactly ``files`` (name -> local path).

    Atomic as described in the module doc; commits the session. The local files are
    copied (the caller may delete them afterwards). Returns the folder with its files.
    Raises ``Unprocessable`` for bad names, ``NotFound`` for an unknown scan, and whatever
    reading a file raises (e.g. ``FileNotFoundError``) with the old folder intact.
    """
    scan_row = db.get(Scan, scan) if isinstance(scan, int) else scan
    if scan_row is None:
        raise NotFound(f"there is no scan with id {scan}")
    names = list(files)
    _check_names(folder_label, names)
    model_id = model if isinstance(model, int) or model is None else model.id
    prefix = f"{derived_prefix(scan_row.id)}/{uuid.uuid4().hex}"
    placed = _place_files(storage, prefix, files, max_file_bytes)
    try:
        folder, old_prefix = _switch_folder(db, scan_row, folder_label, model_id, prefix, placed)
        db.commit()
    except BaseException:
        db.rollback()
        storage.delete_prefix(prefix)
        raise
    if old_prefix is not None:
        storage.delete_prefix(old_prefix)
    return folder


def _place_files(
    storage: Storage, prefix: str, files: Mapping[str, Path], max_bytes: int
) -> list[DerivedFile]:
    """Copy each file to a key under ``prefix``; on any failure remove the prefix."""
    rows: list[DerivedFile] = []
    try:
        for index, (name, path) in enumerate(files.items()):
            with storage.stage(max_bytes) as writer, open(path, "rb") as source:
                writer.write_from(source)
                staged = writer.finish()
            key = _file_key(prefix, index, name)
            try:
                storage.commit(staged, key)
            except BaseException:
                storage.discard(staged)
                raise
            rows.append(
                DerivedFile(
                    name=name,
                    name_key=name_key(name),
                    size=staged.size,
                    sha256=staged.sha256,
                    storage_key=key,
                )
            )
    except BaseException:
        storage.delete_prefix(prefix)
        raise
    return rows


def _switch_folder(
    db: Session,
    scan: Scan,
    label: str,
    model_id: int | None,
    prefix: str,
    new_files: list[DerivedFile],
) -> tuple[DerivedFolder, str | None]:
    """Point the folder row at ``prefix`` with ``new_files`` (not committed)."""
    for _ in range(3):
        folder = db.scalar(
            select(DerivedFolder)
            .where(DerivedFolder.scan_id == scan.id, DerivedFolder.label_key == name_key(label))
            .with_for_update()
        )
        old_prefix = None
        if folder is None:
            folder = DerivedFolder(
                scan_id=scan.id,
                label=label,
                label_key=name_key(label),
                model_id=model_id,
                storage_prefix=prefix,
            )
            try:
                with db.begin_nested():
                    db.add(folder)
            except IntegrityError:
                continue  # a concurrent job created it: switch theirs on the next pass
        else:
            old_prefix = folder.storage_prefix
            folder.files.clear()
            db.flush()  # old rows gone before new ones reuse their names
            folder.label = label
            folder.storage_prefix = prefix
            folder.updated_at = utcnow()
            if model_id is not None:
                folder.model_id = model_id
        folder.files.extend(new_files)
        db.flush()
        return folder, old_prefix
    raise Conflict(f"derived folder {label!r} is being written by several jobs at once; retry")


# --------------------------------------------------------------------------- reading


def derived_folders_of(db: Session, scan: Scan | int) -> list[DerivedFolder]:
    """A scan's derived folders with their files, by label (no permission check; jobs)."""
    scan_id = scan if isinstance(scan, int) else scan.id
    return list(
        db.scalars(
            select(DerivedFolder)
            .where(DerivedFolder.scan_id == scan_id)
            .options(selectinload(DerivedFolder.files))
            .order_by(DerivedFolder.label_key)
        )
    )


def _derived_file(db: Session, scan: Scan, folder_label: str, name: str) -> DerivedFile:
    row = db.scalar(
        select(DerivedFile)
        .join(DerivedFolder, DerivedFolder.id == DerivedFile.folder_id)
        .where(
            DerivedFolder.scan_id == scan.id,
            DerivedFolder.label_key == name_key(folder_label),
            DerivedFile.name_key == name_key(name),
        )
    )
    if row is None:
        raise NotFound(f"scan {scan.series_instance_uid} has no derived file {folder_label}/{name}")
    return row


def open_derived_file(
    db: Session,
    storage: Storage,
    principal: Principal | None,
    project_id: str,
    session_ref: str | int,
    scan_ref: str | int,
    folder_label: str,
    name: str,
) -> tuple[DerivedFile, BinaryIO]:
    """A derived file's row and an open handle on its bytes (the caller closes it).

    When a replacement lands between reading the row and opening the file, the row is
    read again, so the bytes always match the size and SHA-256 returned.
    """
    for _ in range(3):
        scan = get_scan(db, principal, project_id, session_ref, scan_ref)
        row = _derived_file(db, scan, folder_label, name)
        try:
            return row, storage.open(row.storage_key)
        except FileNotFoundError:
            db.rollback()
    raise NotFound(f"the content of {folder_label}/{name} is missing from storage")


def download_name(session_label: str, scan_id: int, folder_label: str, name: str) -> str:
    """The name a derived file is downloaded as: ``<session>_scan<id>_<model>_<name>``.

    Every folder holds a ``mask.nii.gz``; named after its session, scan (the id in its
    URL) and model, downloads from several scans and models no longer overwrite each
    other. Long labels are shortened so the name stays within 200 characters with its
    own name (``mask.nii.gz``) whole; unsafe characters become ``_``
    (:func:`segmap.server.web.transfer.safe_filename`).
    """
    room = max(20, (MAX_FILENAME_CHARS - len(name) - len(f"_scan{scan_id}___")) // 2)
    session_part = safe_filename(session_label, room)
    folder_part = safe_filename(folder_label, room)
    return safe_filename(f"{session_part}_scan{scan_id}_{folder_part}_{name}")


def derived_download_name(row: DerivedFile) -> str:
    """:func:`download_name` of a stored derived file (loads its folder, scan, session)."""
    scan = row.folder.scan
    return download_name(scan.session.label, scan.id, row.folder.label, row.name)


# --------------------------------------------------------------------------- clean-up


def sweep_unreferenced(db: Session, storage: LocalStorage, older_than_s: float = 3600.0) -> int:
    """Delete stored imaging files no row refers to (left by a crash); returns how many.

    Looks under ``scans/`` and ``sessions/`` only, and spares files younger than
    ``older_than_s`` seconds, which may belong to an upload or job still committing.
    """
    referenced = set(db.scalars(select(Instance.storage_key)))
    referenced |= set(db.scalars(select(RoiCollection.storage_key)))
    referenced |= set(db.scalars(select(DerivedFile.storage_key)))
    cutoff = time.time() - older_than_s
    removed = 0
    for top in ("scans", "sessions"):
        root = storage.local_path(top)
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            key = path.relative_to(root.parent).as_posix()  # root.parent: objects/
            with contextlib.suppress(FileNotFoundError):
                if key not in referenced and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        _remove_empty_dirs(root)
    return removed


def _remove_empty_dirs(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(directory)  # fails (and is skipped) when not empty
