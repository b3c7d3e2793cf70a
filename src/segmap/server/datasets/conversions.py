"""A model's successful conversions, as the dataset library reads them.

A conversion job stores its outputs as the scan's derived folder named after the model
(:mod:`segmap.server.imaging.derived`): one folder per scan and model, holding the latest
successful conversion. :func:`gather` takes each such folder of the model and
hard-links its ``report.json`` and NIfTI files into a private snapshot folder, under the
names the report gives (copies where linking fails). From then on a new conversion that
replaces the folder (and deletes its old files) changes nothing the freeze reads.

What the report does not hold is taken from the database: the collection is the ROI
collection whose SOPInstanceUID the report names (its label), the annotator is who
uploaded that collection, the session is the imaging session's label.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from segmap.datasets.errors import DatasetError
from segmap.datasets.manifest import ExcludedCase
from segmap.datasets.sources import FILE_NAMES, Conversion, conversion_from_report
from segmap.pipeline.convert import REPORT_NAME
from segmap.server.db.engine import Database
from segmap.server.db.imaging import DerivedFolder, ImagingSession, RoiCollection, Scan
from segmap.server.storage import LocalStorage


@dataclass(frozen=True)
class SourcePaths:
    """Where the files a dataset was frozen from can be fetched (API paths), for the
    manifest's ``source`` of each file."""

    derived: Callable[[str, int, int, str, str], str]
    """(project, session id, scan id, folder label, file name) -> a derived file's path."""
    scan: Callable[[str, int, int], str]
    """(project, session id, scan id) -> the scan's path (its DICOM files)."""


@dataclass(frozen=True)
class ServerConversion:
    """A conversion found in the database: the library's record and where it lives."""

    conversion: Conversion
    scan_id: int
    fixup: bool
    scan_source: str
    sources: dict[str, str] = field(default_factory=dict)
    """Snapshot path -> where the file was read from (for the manifest)."""
    collection_id: int | None = None
    """The ROI collection converted (None when the report names none the session has)."""


@dataclass(frozen=True)
class Gathered:
    """Every conversion of the model, and the folders that could not be read (and why)."""

    conversions: list[ServerConversion]
    excluded: list[ExcludedCase]


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # another file system, or links not allowed: a copy keeps the bytes too
        shutil.copyfile(source, target)


def _snapshot(storage: LocalStorage, folder: DerivedFolder, into: Path) -> bool:
    """Link the folder's report and NIfTI files into ``into``; False when a file vanished
    (the folder was replaced while reading it)."""
    wanted = {REPORT_NAME, *FILE_NAMES.values()}
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for row in folder.files:
        if row.name in wanted:
            try:
                _link(storage.local_path(row.storage_key), into / row.name)
            except FileNotFoundError:
                return False
    return True


def _folders(db: Session, project_id: str, model_id: int) -> list[DerivedFolder]:
    return list(
        db.scalars(
            select(DerivedFolder)
            .join(Scan, Scan.id == DerivedFolder.scan_id)
            .join(ImagingSession, ImagingSession.id == Scan.session_id)
            .where(DerivedFolder.model_id == model_id, ImagingSession.project_id == project_id)
            .options(
                selectinload(DerivedFolder.files),
                selectinload(DerivedFolder.scan).selectinload(Scan.session),
            )
            .order_by(DerivedFolder.id)
        )
    )


def _collection(db: Session, session_id: int, sop_instance_uid: str) -> RoiCollection | None:
    return db.scalar(
        select(RoiCollection)
        .where(
            RoiCollection.session_id == session_id,
            RoiCollection.sop_instance_uid == sop_instance_uid,
        )
        .options(selectinload(RoiCollection.uploaded_by))
        .limit(1)
    )


def gather(
    database: Database,
    storage: LocalStorage,
    project_id: str,
    model_id: int,
    work: Path,
    paths: SourcePaths,
) -> Gathered:
    """Snapshot every derived folder of the model into ``work/f<id>/`` and read it.

    No permission check: the dataset's creator was checked when it was queued.
    """
    found: list[ServerConversion] = []
    excluded: list[ExcludedCase] = []
    with database.session() as db:
        for folder in _folders(db, project_id, model_id):
            scan, session = folder.scan, folder.scan.session
            key = f"{session.label}/scan-{scan.id}"
            into = work / f"f{folder.id}"
            for _ in range(3):
                if _snapshot(storage, folder, into):
                    break
                db.expire_all()  # read the replaced folder's new rows
                folder = db.get(DerivedFolder, folder.id) or folder
            else:
                excluded.append(ExcludedCase(key, "its outputs were being replaced; try again"))
                continue
            try:
                item = _read(db, into, key, session, scan.id, folder.label, paths)
            except DatasetError as exc:
                excluded.append(ExcludedCase(key, str(exc)))
                continue
            found.append(item)
    return Gathered(found, excluded)


def _read(
    db: Session,
    into: Path,
    key: str,
    session: ImagingSession,
    scan_id: int,
    folder_label: str,
    paths: SourcePaths,
) -> ServerConversion:
    report_path = into / REPORT_NAME
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("its conversion wrote no report.json; convert it again") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"its report.json cannot be read ({exc}); convert it again") from None
    sop = ""
    with contextlib.suppress(KeyError, TypeError):
        sop = str(report["inputs"]["annotation"]["sop_instance_uid"])
    collection = _collection(db, session.id, sop) if sop else None
    annotator = ""
    if collection is not None and collection.uploaded_by is not None:
        annotator = collection.uploaded_by.username
    conversion = conversion_from_report(
        report,
        report_path,
        key=key,
        collection=collection.label if collection is not None else sop or key,
        annotator=annotator,
        session=session.label,
    )
    sources = {
        str(out.path): paths.derived(
            session.project_id, session.id, scan_id, folder_label, out.path.name
        )
        for out in conversion.outputs.values()
    }
    fixup = bool(report.get("fixups")) if isinstance(report, dict) else False
    return ServerConversion(
        conversion,
        scan_id,
        fixup,
        paths.scan(session.project_id, session.id, scan_id),
        sources,
        collection.id if collection is not None else None,
    )
