"""The job runner: a dispatcher thread that claims queued jobs and runs them on an executor.

The database row is the truth. The dispatcher

1. at start, puts jobs left ``running`` by a service that stopped back in the queue, and
   clears the work folders they left (so nothing half-written survives);
2. claims queued jobs, oldest first, up to the executor's capacity, each with one
   ``UPDATE jobs SET state='running' ... WHERE id=:id AND state='queued'`` whose row
   count says whether this runner won it (the same on SQLite and PostgreSQL);
3. prepares each job (the model's region map, the scan's files, a private copy of the
   ROI collection) and submits :func:`~segmap.server.jobs.task.run_job_task` to a local
   process pool (``Settings.workers``) or to Dask when ``Settings.dask_scheduler`` is set;
4. copies the worker's progress and log into the row while it runs;
5. on success stores the outputs as the scan's derived folder named after the model with
   ``services.imaging.replace_derived_resource`` (all files appear at once, a re-run
   replaces them whole) and marks the job succeeded; on failure records the error.

One service process runs jobs for a database: step 1 assumes no other runner is alive.
A graceful stop puts the jobs in flight back in the queue and stops their workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update

from segmap.errors import SegmapError
from segmap.pipeline.executors import Executor, TaskHandle, make_executor
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.imaging import RoiCollection
from segmap.server.db.jobs import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, Job
from segmap.server.db.registry import MLModel
from segmap.server.errors import ServiceError
from segmap.server.jobs.task import (
    LOG_FILE,
    PROGRESS_FILE,
    STAGE_DELAY_ENV,
    JobOutcome,
    JobTask,
    run_job_task,
)
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage

log = logging.getLogger("segmap.server.jobs")

WORK_DIR = "jobs"
MAX_ATTEMPTS = 3
MAX_LOG_CHARS = 100_000
CONVERT_SHARE = 0.95  # of the progress bar; storing the outputs is the rest
EXECUTOR_RETRY_S = 10.0


@dataclass
class _Prepared:
    """A claimed job ready to submit: the task and what the dispatcher keeps about it."""

    task: JobTask
    work_dir: Path
    scan_id: int
    model_id: int
    folder_label: str
    base_log: str


@dataclass
class _InFlight:
    job: _Prepared
    handle: TaskHandle
    seen: tuple[str, float, int] = ("", -1.0, -1)
    started: float = field(default_factory=time.monotonic)

    @property
    def job_id(self) -> int:
        return self.job.task.job_id

    @property
    def attempt(self) -> int:
        return self.job.task.attempt

    @property
    def work_dir(self) -> Path:
        return self.job.work_dir


def _stamp(line: str) -> str:
    return f"{utcnow().strftime('%H:%M:%S')} {line}\n"


def _clip(text: str) -> str:
    if len(text) <= MAX_LOG_CHARS:
        return text
    return "[... earlier lines dropped ...]\n" + text[-MAX_LOG_CHARS:]


class JobRunner:
    """Runs the jobs of one service; ``start()`` and ``stop()`` follow the app's lifespan.

    Args:
        database, storage, settings: the app's.
        poll_s: how often the dispatcher looks for new jobs and progress, in seconds.
    """

    def __init__(self, database: Database, storage: LocalStorage, settings: Settings,
                 *, poll_s: float = 0.3) -> None:
        self.database = database
        self.storage = storage
        self.settings = settings
        self.poll_s = poll_s
        self.work_root = settings.data_dir / WORK_DIR
        self.token = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stage_delay_s = float(os.environ.get(STAGE_DELAY_ENV) or 0.0)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: Executor | None = None
        self._executor_error_at = 0.0
        self._inflight: dict[int, _InFlight] = {}
        self._lost_worker = False

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Re-queue interrupted jobs, clear stale work folders, start the dispatcher."""
        requeued = self.recover()
        if requeued:
            log.warning("re-queued %d job(s) that were running when the service stopped",
                        requeued)
        self._thread = threading.Thread(target=self._loop, name="segmap-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the dispatcher; jobs in flight go back to the queue for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def wake(self) -> None:
        """Look for new jobs now rather than at the next poll."""
        self._wake.set()

    @property
    def executor_description(self) -> str:
        """Where jobs run, in words."""
        if self._executor is not None:
            return self._executor.description
        if self.settings.dask_scheduler:
            return f"Dask cluster at {self.settings.dask_scheduler}"
        return f"local pool of {self.settings.workers} worker process(es)"

    def recover(self) -> int:
        """Put jobs left running back in the queue and delete every work folder."""
        with self.database.session(write=True) as db:
            jobs = db.scalars(select(Job).where(Job.state == JOB_RUNNING)).all()
            for job in jobs:
                job.state = JOB_QUEUED
                job.runner = None
                job.stage = "waiting for a worker (the service stopped while it ran)"
                job.progress = 0.0
                job.log = _clip((job.log or "") + _stamp(
                    "the service stopped while this job ran; it will run again"))
            db.commit()
        shutil.rmtree(self.work_root, ignore_errors=True)
        self.work_root.mkdir(parents=True, exist_ok=True)
        return len(jobs)

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._collect()
                    self._claim()
                except Exception:  # keep the dispatcher alive whatever one round hit
                    log.exception("job dispatcher round failed; retrying")
                self._wake.wait(self.poll_s)
                self._wake.clear()
        finally:
            self._shutdown()

    def _ensure_executor(self) -> Executor | None:
        if self._executor is not None:
            return self._executor
        if time.monotonic() - self._executor_error_at < EXECUTOR_RETRY_S:
            return None
        try:
            self._executor = make_executor(self.settings.workers, self.settings.dask_scheduler)
        except SegmapError as exc:
            self._executor_error_at = time.monotonic()
            log.error("cannot start the job executor: %s", exc)
            self._mark_queued_waiting(f"waiting: {exc}")
            return None
        log.info("jobs run on a %s", self._executor.description)
        return self._executor

    def _mark_queued_waiting(self, stage: str) -> None:
        with self.database.session(write=True) as db:
            db.execute(update(Job).where(Job.state == JOB_QUEUED).values(stage=stage[:128]))
            db.commit()

    def _claim(self) -> None:
        with self.database.session() as db:
            waiting = db.scalars(
                select(Job.id).where(Job.state == JOB_QUEUED).order_by(Job.id).limit(64)
            ).all()
        if not waiting:
            return
        executor = self._ensure_executor()
        if executor is None:
            return
        free = executor.capacity - len(self._inflight)
        for job_id in waiting:
            if free <= 0 or self._stop.is_set():
                return
            if self._claim_one(job_id):
                free -= 1
                self._submit(executor, job_id)

    def _claim_one(self, job_id: int) -> bool:
        with self.database.session(write=True) as db:
            result = db.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JOB_QUEUED)
                .values(state=JOB_RUNNING, runner=self.token, attempts=Job.attempts + 1,
                        started_at=utcnow(), finished_at=None, progress=0.0,
                        stage="starting", error=None)
            )
            db.commit()
            return bool(getattr(result, "rowcount", 0) == 1)

    # ------------------------------------------------------------------ one job

    def _submit(self, executor: Executor, job_id: int) -> None:
        try:
            prepared = self._prepare(job_id, executor)
        except (SegmapError, ServiceError) as exc:
            self._finish(job_id, JOB_FAILED, error=str(exc), line=f"failed: {exc}")
            return
        except Exception as exc:
            log.exception("preparing job %s failed", job_id)
            self._finish(job_id, JOB_FAILED, error=f"internal error preparing the job "
                         f"({type(exc).__name__}: {exc}); see the service log")
            return
        try:
            handle = executor.submit(run_job_task, prepared.task)
        except Exception as exc:
            log.exception("submitting job %s failed", job_id)
            self._drop_executor()
            self._requeue(job_id, f"could not hand the job to the {executor.description} "
                          f"({exc}); it will be tried again")
            shutil.rmtree(prepared.work_dir, ignore_errors=True)
            return
        self._inflight[job_id] = _InFlight(prepared, handle)

    def _prepare(self, job_id: int, executor: Executor) -> _Prepared:
        from segmap.server.imaging.collections import collection_file
        from segmap.server.imaging.lookup import scan_files
        from segmap.server.registry.regionmap import REGION_MAP_FILENAME, model_region_map

        with self.database.session() as db:
            job = db.get(Job, job_id)
            if job is None:
                raise ServiceError(f"job {job_id} was deleted")
            model = db.get(MLModel, job.model_id)
            collection = db.get(RoiCollection, job.collection_id)
            if model is None or collection is None:
                raise ServiceError("its model or ROI collection was deleted")
            found = model_region_map(db, self.storage, model)
            if found is None:
                raise ServiceError(
                    f"model {model.label!r} has no region map; upload {REGION_MAP_FILENAME} "
                    "into one of its folders (Manage Files), then convert again")
            files = scan_files(db, self.storage, collection.scan_id)
            if not files:
                raise ServiceError(f"the scan of ROI collection {collection.label!r} has no "
                                   "image files; upload the series again")
            attempt = job.attempts
            work = self.work_root / f"job-{job_id}-attempt-{attempt}"
            work.mkdir(parents=True, exist_ok=False)
            copy = work / "collection.dcm"
            # A private copy: a replacement of the collection deletes the stored file.
            shutil.copyfile(collection_file(db, self.storage, collection), copy)
            lines = (
                f"attempt {attempt} on a {executor.description}: model {model.label!r} "
                f"(spacing {' x '.join(f'{s:g}' for s in model.voxel_spacing)} mm, map "
                f"{found.source.folder}/{found.source.file}), {collection.collection_type} "
                f"{collection.label!r} on scan {collection.scan_id}"
            )
            base_log = _clip((job.log or "") + _stamp(lines))
            task = JobTask(job_id, attempt, found.region_map, str(files[0].parent), str(copy),
                           str(work), model.voxel_spacing, self.stage_delay_s)
            prepared = _Prepared(task, work, collection.scan_id, model.id, model.label, base_log)
        self._update_running(job_id, stage="queued on a worker", progress=0.0, log_text=base_log)
        return prepared

    def _collect(self) -> None:
        self._lost_worker = False
        for job_id, flight in list(self._inflight.items()):
            if flight.handle.done():
                del self._inflight[job_id]
                self._complete(flight)
            else:
                self._copy_progress(flight)
        if self._lost_worker and self._executor is not None:
            # A broken local pool fails every task it held at once (all collected above);
            # one fresh pool serves the re-queued jobs.
            with contextlib.suppress(Exception):
                self._executor.restart()

    def _copy_progress(self, flight: _InFlight) -> None:
        stage, fraction = "", 0.0
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((flight.work_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
            stage, fraction = str(data["stage"]), float(data["progress"])
        worker_log = ""
        with contextlib.suppress(OSError):
            worker_log = (flight.work_dir / LOG_FILE).read_text(encoding="utf-8")
        seen = (stage, fraction, len(worker_log))
        if seen == flight.seen:
            return
        flight.seen = seen
        self._update_running(flight.job_id, stage=stage or "running",
                             progress=CONVERT_SHARE * fraction,
                             log_text=_clip(flight.job.base_log + worker_log))

    def _worker_log(self, flight: _InFlight) -> str:
        with contextlib.suppress(OSError):
            return (flight.work_dir / LOG_FILE).read_text(encoding="utf-8")
        return ""

    def _complete(self, flight: _InFlight) -> None:
        executor = self._executor
        try:
            outcome: JobOutcome = flight.handle.result()
        except Exception as exc:
            text = _clip(flight.job.base_log + self._worker_log(flight))
            shutil.rmtree(flight.work_dir, ignore_errors=True)
            if executor is not None and executor.is_lost_worker(exc):
                self._lost_worker = True
                if flight.attempt < MAX_ATTEMPTS:
                    self._requeue(flight.job_id, "the worker process died (out of memory or a "
                                  "crash); the job will run again", text)
                else:
                    self._finish(flight.job_id, JOB_FAILED, log_text=text, error=(
                        f"the worker process died {flight.attempt} times while converting; "
                        "the scan may be too large for the memory of one worker"))
                return
            self._finish(flight.job_id, JOB_FAILED, log_text=text,
                         error=f"internal error ({type(exc).__name__}: {exc})")
            return
        text = _clip(flight.job.base_log + self._worker_log(flight))
        try:
            if not outcome.ok:
                self._finish(flight.job_id, JOB_FAILED, error=outcome.error, log_text=text)
                return
            self._store(flight, outcome, text)
        finally:
            shutil.rmtree(flight.work_dir, ignore_errors=True)

    def _store(self, flight: _InFlight, outcome: JobOutcome, text: str) -> None:
        from segmap.server.imaging.derived import replace_derived_resource

        if not self._still_ours(flight.job_id):
            log.info("job %s was taken over or deleted; its outputs are dropped", flight.job_id)
            return
        self._update_running(flight.job_id, stage="storing outputs", progress=CONVERT_SHARE,
                             log_text=text)
        files = {name: Path(path) for name, path in outcome.files.items()}
        try:
            with self.database.session(write=True) as db:
                folder = replace_derived_resource(db, self.storage, flight.job.scan_id,
                                                  flight.job.folder_label, files,
                                                  model=flight.job.model_id)
                names = ", ".join(f.name for f in folder.files)
        except (SegmapError, ServiceError) as exc:
            self._finish(flight.job_id, JOB_FAILED, error=f"the outputs could not be stored: "
                         f"{exc}", log_text=text)
            return
        line = (f"stored {names} in folder {flight.job.folder_label!r} of scan "
                f"{flight.job.scan_id}; done in {time.monotonic() - flight.started:.1f} s")
        self._finish(flight.job_id, JOB_SUCCEEDED, log_text=text + _stamp(line),
                     output_folder=flight.job.folder_label)

    # ------------------------------------------------------------------ row updates

    def _still_ours(self, job_id: int) -> bool:
        with self.database.session() as db:
            row = db.execute(select(Job.state, Job.runner).where(Job.id == job_id)).first()
        return row is not None and row[0] == JOB_RUNNING and row[1] == self.token

    def _update_running(self, job_id: int, *, stage: str, progress: float,
                        log_text: str) -> None:
        with self.database.session(write=True) as db:
            db.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JOB_RUNNING, Job.runner == self.token)
                .values(stage=stage[:128], progress=max(0.0, min(1.0, progress)),
                        log=log_text)
            )
            db.commit()

    def _finish(self, job_id: int, state: str, *, error: str | None = None,
                line: str | None = None, log_text: str | None = None,
                output_folder: str | None = None) -> None:
        with self.database.session(write=True) as db:
            job = db.get(Job, job_id)
            if job is None or job.state != JOB_RUNNING or job.runner != self.token:
                return
            text = log_text if log_text is not None else (job.log or "")
            if line:
                text += _stamp(line)
            if state == JOB_FAILED and error and not line:
                text += _stamp(f"failed: {error.splitlines()[0] if error else ''}")
            job.state = state
            job.error = error
            job.log = _clip(text)
            job.finished_at = utcnow()
            job.runner = None
            if state == JOB_SUCCEEDED:
                job.progress = 1.0
                job.stage = "done"
                job.output_folder = output_folder
            else:
                job.stage = "failed"
            db.commit()

    def _requeue(self, job_id: int, why: str, log_text: str | None = None) -> None:
        with self.database.session(write=True) as db:
            job = db.get(Job, job_id)
            if job is None or job.runner != self.token:
                return
            job.state = JOB_QUEUED
            job.runner = None
            job.progress = 0.0
            job.stage = "waiting for a worker"
            job.log = _clip((log_text if log_text is not None else job.log or "") + _stamp(why))
            db.commit()

    # ------------------------------------------------------------------ executor trouble

    def _drop_executor(self) -> None:
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.terminate()
        self._executor = None
        self._executor_error_at = time.monotonic()

    def _shutdown(self) -> None:
        for job_id, flight in list(self._inflight.items()):
            self._requeue(job_id, "the service is stopping; the job will run again at the "
                          "next start")
            with contextlib.suppress(Exception):
                flight.handle.cancel()
        self._inflight.clear()
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.terminate()
            self._executor = None
        shutil.rmtree(self.work_root, ignore_errors=True)
