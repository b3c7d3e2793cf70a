"""Each collection's latest conversion for a model, kept for the QA's agreement table.

A model's conversion job stores its outputs as the scan's derived folder, which the next
conversion of that scan replaces whole (:mod:`segmap.server.imaging.derived`): the folder
holds one collection's masks at a time. So that a dataset can compare the collections
of one scan, every successful conversion also keeps what the comparison needs -- the
composite mask on the scan's own grid (``mask.nii.gz``) and its ``report.json`` -- under
the collection, at ``models/{model}/collections/{collection}/`` in storage
(:func:`keep_collection_mask`, called by the job runner once the derived folder is
switched). The model's prefix rather than the scan's: the orphan sweep deletes files
under ``scans/`` that no row names, and deleting the model removes ``models/{model}``
whole, these copies with it.

A collection re-uploaded replaces its copy when its new conversion succeeds; until then
the copy no longer matches the collection, and :func:`kept_masks` passes it over: a copy
is used only when its report names the collection's current file (SHA-256) and scan,
and when the mask's bytes are those the report recorded (a reader racing a writer sees
a mismatch and reads again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from segmap.pipeline.convert import MASK_NAME, REPORT_NAME
from segmap.pipeline.report import file_sha256
from segmap.server.db.engine import Database
from segmap.server.db.imaging import RoiCollection
from segmap.server.db.jobs import Job
from segmap.server.settings import DEFAULT_MAX_UPLOAD_BYTES
from segmap.server.storage import LocalStorage, Storage

log = logging.getLogger("segmap.server.datasets")

KEPT = (MASK_NAME, REPORT_NAME)
"""The files kept per collection, the mask first (a reader checks it against the report)."""
_READ_TRIES = 3


def collection_prefix(model_id: int, collection_id: int) -> str:
    """Storage prefix of a collection's kept conversion for a model."""
    return f"models/{model_id}/collections/{collection_id}"


def keep_collection_mask(
    db: Session, storage: Storage, job_id: int, files: Mapping[str, Path]
) -> bool:
    """Copy a finished job's native mask and report under its collection; whether kept.

    A job without a native mask (or report) keeps nothing. A failure to write is logged
    and leaves the derived folder, already stored, as it is: the copy only feeds the
    agreement table, which then lacks this collection until it is converted again.
    No permission check: the job runner calls it for the job it holds.
    """
    job = db.get(Job, job_id)
    if job is None or not all(name in files for name in KEPT):
        return False
    prefix = collection_prefix(job.model_id, job.collection_id)
    try:
        for name in KEPT:
            with storage.stage(DEFAULT_MAX_UPLOAD_BYTES) as writer, open(files[name], "rb") as f:
                writer.write_from(f)
                staged = writer.finish()
            try:
                storage.commit(staged, f"{prefix}/{name}")
            except BaseException:
                storage.discard(staged)
                raise
    except OSError as exc:
        log.warning("job %s: the collection's mask was not kept for agreement: %s", job_id, exc)
        return False
    return True


@dataclass(frozen=True)
class KeptMask:
    """A collection's kept conversion, linked into a freeze's work folder.

    Attributes:
        collection_id, collection: the ROI collection (row id, label).
        scan_id: the scan it was converted onto.
        mask: the composite mask on the scan's grid (map values), in the work folder.
        map_sha256: the region map it was converted with.
    """

    collection_id: int
    collection: str
    scan_id: int
    mask: Path
    map_sha256: str


def kept_masks(
    database: Database,
    storage: LocalStorage,
    model_id: int,
    scan_ids: Iterable[int],
    work: Path,
) -> dict[int, list[KeptMask]]:
    """Per scan, the kept conversions of its collections for the model, by collection id.

    Each is hard-linked into ``work/k{collection}/`` (a copy where linking fails), so a
    conversion finishing meanwhile changes nothing read. No permission check: the
    dataset's creator was checked when it was queued.
    """
    wanted = sorted(set(scan_ids))
    found: dict[int, list[KeptMask]] = {}
    if not wanted:
        return found
    with database.session() as db:
        rows = list(
            db.scalars(
                select(RoiCollection)
                .where(RoiCollection.scan_id.in_(wanted))
                .options(selectinload(RoiCollection.scan))
                .order_by(RoiCollection.id)
            )
        )
        current = [(r.id, r.label, r.scan_id, r.sha256, r.scan.series_instance_uid) for r in rows]
    for collection_id, label, scan_id, sha256, series_uid in current:
        prefix = collection_prefix(model_id, collection_id)
        into = work / f"k{collection_id}"
        for _ in range(_READ_TRIES):
            report = _link_pair(storage, prefix, into)
            if report is None:
                break  # never converted for this model (or its copy was not kept)
            if _mask_matches(report, into / MASK_NAME):
                if _names_collection(report, sha256, series_uid):
                    found.setdefault(scan_id, []).append(
                        KeptMask(
                            collection_id,
                            label,
                            scan_id,
                            into / MASK_NAME,
                            str(report.get("region_map", {}).get("sha256", "")),
                        )
                    )
                break
    return found


def _link_pair(storage: LocalStorage, prefix: str, into: Path) -> dict[str, Any] | None:
    """Link the kept mask and report into ``into``; the report, None when either is absent
    or the report cannot be read."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for name in KEPT:
        source = storage.local_path(f"{prefix}/{name}")
        if not source.is_file():
            return None
        try:
            os.link(source, into / name)
        except FileNotFoundError:
            return None
        except OSError:  # another file system, or links not allowed: copy the bytes
            try:
                shutil.copyfile(source, into / name)
            except FileNotFoundError:
                return None
    with contextlib.suppress(OSError, ValueError):
        report = json.loads((into / REPORT_NAME).read_text(encoding="utf-8"))
        if isinstance(report, dict):
            return report
    return None


def _mask_matches(report: dict[str, Any], mask: Path) -> bool:
    """Whether the mask's bytes are those the report recorded for it."""
    for out in report.get("outputs", []):
        if isinstance(out, dict) and out.get("kind") == "mask":
            return out.get("sha256") == file_sha256(mask)
    return False


def _names_collection(report: dict[str, Any], sha256: str, series_uid: str) -> bool:
    """Whether the report converted the collection's current file onto its scan."""
    inputs = report.get("inputs")
    if not isinstance(inputs, dict):
        return False
    annotation, image = inputs.get("annotation"), inputs.get("image")
    return (
        isinstance(annotation, dict)
        and isinstance(image, dict)
        and annotation.get("sha256") == sha256
        and image.get("series_instance_uid") == series_uid
    )
