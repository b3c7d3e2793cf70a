"""Gathering what one job attempt needs into a :class:`~segmap.server.jobs.task.JobTask`.

The model's region map, the scan's image folder and a private copy of the ROI collection
(a replacement of the collection deletes the stored file), in the attempt's own work
folder ``jobs/job-{id}-attempt-{n}`` of the data folder; and removing the folders of
attempts that no longer run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from segmap.server.db.engine import Database
from segmap.server.db.imaging import RoiCollection
from segmap.server.db.jobs import Job
from segmap.server.db.registry import MLModel
from segmap.server.errors import ServiceError
from segmap.server.imaging.collections import collection_file
from segmap.server.imaging.lookup import scan_files
from segmap.server.jobs import leases
from segmap.server.jobs.leases import clip, stamp
from segmap.server.jobs.redact import runner_label
from segmap.server.jobs.task import JobTask
from segmap.server.registry.regionmap import REGION_MAP_FILENAME, model_region_map
from segmap.server.storage import LocalStorage

_WORK_DIR = re.compile(r"job-(\d+)-attempt-(\d+)")


@dataclass(frozen=True)
class Prepared:
    """A claimed job ready to submit: the task and what the dispatcher keeps about it."""

    task: JobTask
    work_dir: Path
    scan_id: int
    model_id: int
    folder_label: str
    base_log: str


def work_dir_name(job_id: int, attempt: int) -> str:
    """The work folder of one attempt (unique: attempts are numbered per claim)."""
    return f"job-{job_id}-attempt-{attempt}"


def parse_work_dir_name(name: str) -> tuple[int, int] | None:
    """(job id, attempt) of a work folder's name, None for anything else."""
    found = _WORK_DIR.fullmatch(name)
    return (int(found.group(1)), int(found.group(2))) if found else None


def prepare(
    database: Database,
    storage: LocalStorage,
    work_root: Path,
    job_id: int,
    *,
    runner: str,
    where: str,
    stage_delay_s: float,
) -> Prepared:
    """The task of the job's current attempt; ``ServiceError`` saying why it cannot run.

    ``runner`` (the claiming runner's token, named by its ``redact.runner_label``) and
    ``where`` (the executor, in words) go into the job's log line for this attempt.
    """
    with database.session() as db:
        job = db.get(Job, job_id)
        if job is None:
            raise ServiceError(f"job {job_id} was deleted")
        model = db.get(MLModel, job.model_id)
        collection = db.get(RoiCollection, job.collection_id)
        if model is None or collection is None:
            raise ServiceError("its model or ROI collection was deleted")
        found = model_region_map(db, storage, model)
        if found is None:
            raise ServiceError(
                f"model {model.label!r} has no region map; upload {REGION_MAP_FILENAME} "
                "into one of its folders (Manage Files), then convert again"
            )
        files = scan_files(db, storage, collection.scan_id)
        if not files:
            raise ServiceError(
                f"the scan of ROI collection {collection.label!r} has no "
                "image files; upload the series again"
            )
        attempt = job.attempts
        work = work_root / work_dir_name(job_id, attempt)
        work.mkdir(parents=True, exist_ok=False)
        copy = work / "collection.dcm"
        shutil.copyfile(collection_file(db, storage, collection), copy)
        line = (
            f"attempt {attempt} by runner {runner_label(runner)} on a {where}: "
            f"model {model.label!r} "
            f"(spacing {' x '.join(f'{s:g}' for s in model.voxel_spacing)} mm, map "
            f"{found.source.folder}/{found.source.file}), {collection.collection_type} "
            f"{collection.label!r} on scan {collection.scan_id}"
        )
        base_log = clip((job.log or "") + stamp(line))
        task = JobTask(
            job_id,
            attempt,
            found.region_map,
            str(files[0].parent),
            str(copy),
            str(work),
            model.voxel_spacing,
            stage_delay_s,
        )
        return Prepared(task, work, collection.scan_id, model.id, model.label, base_log)


def sweep_work_folders(database: Database, work_root: Path) -> int:
    """Delete the folders under ``work_root`` of attempts no longer running (any
    service's); how many were deleted.

    A running attempt's folder is kept whoever runs it: services sharing the data folder
    share ``jobs/``. An attempt's folder is made after its claim commits, so a folder whose
    attempt is not running belongs to nobody alive.
    """
    live = leases.running_attempts(database)
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for path in work_root.iterdir():
            if parse_work_dir_name(path.name) in live:
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
