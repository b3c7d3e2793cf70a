"""The part of a job that runs in a worker: one conversion into the job's work folder.

:func:`run_job_task` is a plain function of a picklable :class:`JobTask`, so a local
process pool and a Dask cluster run it alike. It touches no database: it reads the
inputs named in the task, writes the outputs into ``work_dir/out`` through the
pipeline's all-or-nothing output transaction, and reports progress by rewriting
``work_dir/progress.json`` (atomically; with the worker's pid) and appending to
``work_dir/log.txt``. The dispatcher copies stage, progress and log into the job's row
(the pid only into the service log).

Test hook: ``stage_delay_s`` (from the environment variable ``SEGMAP_JOB_STAGE_DELAY_S``
of the service) makes the worker sleep that many seconds after each progress report, so
tests can stop the service in the middle of a job. It is 0 in normal use.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from segmap.errors import SegmapError
from segmap.labelmap import RegionMap

PROGRESS_FILE = "progress.json"
LOG_FILE = "log.txt"
OUT_DIR = "out"
STAGE_DELAY_ENV = "SEGMAP_JOB_STAGE_DELAY_S"


@dataclass(frozen=True)
class JobTask:
    """Everything a worker needs for one job attempt (plain, picklable values).

    Attributes:
        job_id, attempt: which job and which start of it.
        region_map: the model's map.
        image_dir: folder holding the scan's DICOM files (and nothing else).
        collection_path: the RTSTRUCT or SEG (a copy private to this attempt).
        work_dir: this attempt's folder; outputs go to ``work_dir/out``.
        spacing: the model's voxel spacing in mm along columns, rows and slices.
        stage_delay_s: test hook, see the module doc.
    """

    job_id: int
    attempt: int
    region_map: RegionMap
    image_dir: str
    collection_path: str
    work_dir: str
    spacing: tuple[float, float, float]
    stage_delay_s: float = 0.0


@dataclass(frozen=True)
class JobOutcome:
    """What one attempt produced: the output files, or the error for the user.

    ``detail`` is for the service log only (a bug's traceback): users never see it.
    """

    ok: bool
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    detail: str | None = None


class _Reporter:
    """Writes progress and log lines into the work folder for the dispatcher to read."""

    def __init__(self, work_dir: Path, delay_s: float) -> None:
        self.work_dir = work_dir
        self.delay_s = delay_s

    def log(self, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with open(self.work_dir / LOG_FILE, "a", encoding="utf-8") as f:
            for part in line.splitlines() or [""]:
                f.write(f"{stamp} {part}\n")

    def progress(self, stage: str, fraction: float) -> None:
        # The worker's pid goes only into the work folder (the service's own): the
        # dispatcher puts it in the service log, never in the job's log users read.
        state = {"stage": stage, "progress": fraction, "worker_pid": os.getpid()}
        temp = self.work_dir / f".{PROGRESS_FILE}.tmp"
        temp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temp, self.work_dir / PROGRESS_FILE)
        self.log(f"{stage} ({fraction:.0%})")
        if self.delay_s > 0:
            time.sleep(self.delay_s)


def run_job_task(task: JobTask) -> JobOutcome:
    """Convert the task's collection; never raises for bad input (see :class:`JobOutcome`)."""
    from segmap.pipeline.convert import ConvertOptions, convert

    start = time.perf_counter()
    work = Path(task.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    reporter = _Reporter(work, task.stage_delay_s)
    # No process id or path here: every member of the project reads this log.
    reporter.log(
        f"worker converting job {task.job_id}, attempt "
        f"{task.attempt}, at spacing {' x '.join(f'{s:g}' for s in task.spacing)} mm"
    )
    try:
        result = convert(
            task.region_map,
            task.image_dir,
            task.collection_path,
            work / OUT_DIR,
            ConvertOptions(spacing=task.spacing, write_seg=True),
            progress=reporter.progress,
        )
    except SegmapError as exc:
        reporter.log(f"failed: {exc}")
        return JobOutcome(False, str(exc), seconds=time.perf_counter() - start)
    except MemoryError:
        message = "the worker ran out of memory; run the service with fewer --workers"
        reporter.log(message)
        return JobOutcome(False, message, seconds=time.perf_counter() - start)
    except Exception as exc:  # a bug: the traceback goes to the service log, a sentence to the user
        message = (
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in segmap, "
            "the service log has the details"
        )
        reporter.log(f"failed: {message}")
        return JobOutcome(
            False,
            message,
            seconds=time.perf_counter() - start,
            detail=traceback.format_exc(),
        )
    reporter.log("\n".join(result.report.describe()))
    files = {name: str(path) for name, path in sorted(result.files.items())}
    return JobOutcome(True, None, files, time.perf_counter() - start)
