"""The job runner: a dispatcher thread that claims jobs and runs them on an executor.

The database row is the truth, and a job is changed only by the runner holding its
lease (:mod:`~segmap.server.jobs.leases`), so several services may share one database:

1. at start, it deletes the work folders no running job uses (left by a service that
   died); jobs such a service held run again once their leases expire;
2. it claims queued jobs and jobs with an expired lease, oldest first, up to the
   executor's capacity; a :class:`~segmap.server.jobs.keeper.LeaseKeeper` renews the
   leases of its jobs every third of the lease (``Settings.job_lease_s``);
3. it prepares each job (:mod:`~segmap.server.jobs.prepare`) and submits
   :func:`~segmap.server.jobs.task.run_job_task` to a local process pool
   (``Settings.workers``) or to Dask when ``Settings.dask_scheduler`` is set;
4. it copies the worker's progress and log into the row while it runs;
5. on success it stores the outputs as the scan's derived folder named after the model
   (``imaging.derived.replace_derived_resource``: all files appear at once, a re-run
   replaces them whole), in one transaction with the check that it still holds the job,
   and marks the job succeeded; on failure it records the error.

A graceful stop puts the jobs in flight back in the queue (any service may take them at
once) and stops their workers. A job lost to another runner (this one stalled past its
lease) is dropped: its outputs are never stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from segmap.errors import SegmapError
from segmap.pipeline.executors import Executor, make_executor
from segmap.server.db.engine import Database
from segmap.server.db.jobs import JOB_FAILED, JOB_SUCCEEDED
from segmap.server.db.leases import Lease, holder_token
from segmap.server.errors import ServiceError
from segmap.server.jobs import leases
from segmap.server.jobs.flight import InFlight, store_outputs
from segmap.server.jobs.keeper import LeaseKeeper
from segmap.server.jobs.leases import MAX_ATTEMPTS, Claimed, clip, stamp
from segmap.server.jobs.prepare import prepare, sweep_work_folders
from segmap.server.jobs.task import STAGE_DELAY_ENV, JobOutcome, run_job_task
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage

log = logging.getLogger("segmap.server.jobs")

WORK_DIR = "jobs"
CONVERT_SHARE = 0.95  # of the progress bar; storing the outputs is the rest
EXECUTOR_RETRY_S = 10.0


class JobRunner:
    """Runs jobs for one service; ``start()`` and ``stop()`` follow the app's lifespan.

    Args:
        database, storage, settings: the app's.
        poll_s: how often the dispatcher looks for new jobs and progress, in seconds.
    """

    def __init__(
        self, database: Database, storage: LocalStorage, settings: Settings, *, poll_s: float = 0.3
    ) -> None:
        self.database = database
        self.storage = storage
        self.settings = settings
        self.poll_s = poll_s
        self.work_root = settings.data_dir / WORK_DIR
        self.lease = Lease(holder_token(), settings.job_lease_s)
        self.stage_delay_s = float(os.environ.get(STAGE_DELAY_ENV) or 0.0)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: Executor | None = None
        self._executor_error_at = 0.0
        self._inflight: dict[int, InFlight] = {}
        self._lost_worker = False
        self._keeper = LeaseKeeper(database, self.lease, on_lost=self._wake.set)

    @property
    def token(self) -> str:
        """The token this runner's jobs carry as their ``runner``."""
        return self.lease.token

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Clear stale work folders, start the dispatcher and the lease keeper."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.sweep_work_folders()
        self._keeper.start()
        self._thread = threading.Thread(target=self._loop, name="segmap-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the threads; jobs in flight go back to the queue for any runner."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        self._keeper.stop()

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

    def sweep_work_folders(self) -> int:
        """Delete work folders of attempts no longer running (any service's); how many."""
        return sweep_work_folders(self.database, self.work_root)

    # ------------------------------------------------------------------ the dispatcher

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._drop_lost()
                    self._collect()
                    self._claim()
                except Exception:  # keep the dispatcher alive whatever one round hit
                    log.exception("job dispatcher round failed; retrying")
                self._wake.wait(self.poll_s)
                self._wake.clear()
        finally:
            self._shutdown()

    # ------------------------------------------------------------------ claiming

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
            leases.mark_queued_waiting(self.database, f"waiting: {exc}")
            return None
        log.info("jobs run on a %s", self._executor.description)
        return self._executor

    def _claim(self) -> None:
        if not leases.any_claimable(self.database):
            return
        executor = self._ensure_executor()
        if executor is None or self._stop.is_set():
            return
        claimed = leases.claim(self.database, self.lease, executor.capacity - len(self._inflight))
        for job in claimed:
            self._keeper.hold(job.job_id)
        if any(job.attempt > 1 for job in claimed):
            self.sweep_work_folders()  # an earlier attempt's folder is nobody's now
        for job in claimed:
            self._submit(executor, job)

    # ------------------------------------------------------------------ one job

    def _submit(self, executor: Executor, claimed: Claimed) -> None:
        job_id = claimed.job_id
        try:
            prepared = prepare(
                self.database,
                self.storage,
                self.work_root,
                job_id,
                runner=self.token,
                where=executor.description,
                stage_delay_s=self.stage_delay_s,
            )
        except (SegmapError, ServiceError) as exc:
            self._finish(job_id, JOB_FAILED, error=str(exc), line=f"failed: {exc}")
            return
        except Exception as exc:
            log.exception("preparing job %s failed", job_id)
            self._finish(
                job_id,
                JOB_FAILED,
                error=f"internal error preparing the job "
                f"({type(exc).__name__}: {exc}); see the service log",
            )
            return
        leases.update_running(
            self.database,
            job_id,
            self.token,
            stage="queued on a worker",
            progress=0.0,
            log_text=prepared.base_log,
        )
        try:
            handle = executor.submit(run_job_task, prepared.task)
        except Exception as exc:
            log.exception("submitting job %s failed", job_id)
            self._drop_executor()
            self._release(
                job_id,
                f"could not hand the job to the {executor.description} "
                f"({exc}); it will be tried again",
            )
            shutil.rmtree(prepared.work_dir, ignore_errors=True)
            return
        self._inflight[job_id] = InFlight(prepared, handle)

    def _drop_lost(self) -> None:
        for job_id in self._keeper.take_lost():
            flight = self._inflight.pop(job_id, None)
            if flight is not None:
                with contextlib.suppress(Exception):
                    flight.handle.cancel()
                shutil.rmtree(flight.work_dir, ignore_errors=True)

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

    def _copy_progress(self, flight: InFlight) -> None:
        stage, fraction, pid = flight.progress()
        flight.note_worker(pid)
        worker_log = flight.worker_log()
        seen = (stage, fraction, len(worker_log))
        if seen == flight.seen:
            return
        flight.seen = seen
        leases.update_running(
            self.database,
            flight.job_id,
            self.token,
            stage=stage or "running",
            progress=CONVERT_SHARE * fraction,
            log_text=clip(flight.job.base_log + worker_log),
        )

    def _complete(self, flight: InFlight) -> None:
        executor = self._executor
        try:
            outcome: JobOutcome = flight.handle.result()
        except Exception as exc:
            text = clip(flight.job.base_log + flight.worker_log())
            shutil.rmtree(flight.work_dir, ignore_errors=True)
            if executor is not None and executor.is_lost_worker(exc):
                self._lost_worker = True
                if flight.attempt < MAX_ATTEMPTS:
                    self._release(
                        flight.job_id,
                        "the worker process died (out of memory or "
                        "a crash); the job will run again",
                        text,
                    )
                else:
                    self._finish(
                        flight.job_id,
                        JOB_FAILED,
                        log_text=text,
                        error=(
                            f"the worker process died {flight.attempt} times while converting; "
                            "the scan may be too large for the memory of one worker"
                        ),
                    )
                return
            self._finish(
                flight.job_id,
                JOB_FAILED,
                log_text=text,
                error=f"internal error ({type(exc).__name__}: {exc})",
            )
            return
        text = clip(flight.job.base_log + flight.worker_log())
        if outcome.detail:
            log.error("job %s hit a bug in segmap:\n%s", flight.job_id, outcome.detail)
        try:
            if not outcome.ok:
                self._finish(flight.job_id, JOB_FAILED, error=outcome.error, log_text=text)
                return
            self._store(flight, outcome, text)
        finally:
            shutil.rmtree(flight.work_dir, ignore_errors=True)

    def _store(self, flight: InFlight, outcome: JobOutcome, text: str) -> None:
        job = flight.job
        leases.update_running(
            self.database,
            flight.job_id,
            self.token,
            stage="storing outputs",
            progress=CONVERT_SHARE,
            log_text=text,
        )
        files = {name: Path(path) for name, path in outcome.files.items()}
        try:
            stored = store_outputs(self.database, self.storage, self.token, flight, files)
        except (SegmapError, ServiceError) as exc:
            self._finish(
                flight.job_id,
                JOB_FAILED,
                error=f"the outputs could not be stored: {exc}",
                log_text=text,
            )
            return
        if stored is None:
            log.info("job %s was taken over or deleted; its outputs are dropped", flight.job_id)
            self._keeper.let_go(flight.job_id)
            return
        names = ", ".join(stored)
        line = (
            f"stored {names} in folder {job.folder_label!r} of scan {job.scan_id}; "
            f"done in {time.monotonic() - flight.started:.1f} s"
        )
        self._finish(
            flight.job_id,
            JOB_SUCCEEDED,
            log_text=text + stamp(line),
            output_folder=job.folder_label,
        )

    # ------------------------------------------------------------------ row changes

    def _finish(
        self,
        job_id: int,
        state: str,
        *,
        error: str | None = None,
        line: str | None = None,
        log_text: str | None = None,
        output_folder: str | None = None,
    ) -> None:
        if state == JOB_FAILED and error:
            # The whole message, paths included, for the administrator; the job's row
            # keeps the redacted one its users read (``leases``, ``redact``).
            log.warning("job %s failed: %s", job_id, error)
        leases.finish(
            self.database,
            job_id,
            self.token,
            state,
            error=error,
            line=line,
            log_text=log_text,
            output_folder=output_folder,
        )
        self._keeper.let_go(job_id)

    def _release(self, job_id: int, why: str, log_text: str | None = None) -> None:
        leases.release(self.database, job_id, self.token, why, log_text)
        self._keeper.let_go(job_id)

    # ------------------------------------------------------------------ executor trouble

    def _drop_executor(self) -> None:
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.terminate()
        self._executor = None
        self._executor_error_at = time.monotonic()

    def _shutdown(self) -> None:
        for job_id, flight in list(self._inflight.items()):
            self._release(job_id, "the service is stopping; the job will run again")
            with contextlib.suppress(Exception):
                flight.handle.cancel()
            shutil.rmtree(flight.work_dir, ignore_errors=True)
        self._inflight.clear()
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.terminate()
            self._executor = None
