"""One job in flight on this runner: what it is, what its worker has written so far, and
storing its outputs once it is done.

The worker reports through files in the job's work folder (``PROGRESS_FILE``,
``LOG_FILE``; see :mod:`~segmap.server.jobs.task`); the runner reads them here. Storing
the outputs happens in one write transaction that first checks, with the job's row
locked, that this runner still holds the job, so a runner that stalled past its lease
never overwrites the outputs of the runner that took the job over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from segmap.pipeline.executors import TaskHandle
from segmap.server.datasets.collection_masks import keep_collection_mask
from segmap.server.db.engine import Database
from segmap.server.db.imaging import ImagingSession, Scan
from segmap.server.dicomweb.index import index_derived_seg
from segmap.server.imaging.derived import replace_derived_resource
from segmap.server.jobs import leases
from segmap.server.jobs.prepare import Prepared
from segmap.server.jobs.task import LOG_FILE, PROGRESS_FILE
from segmap.server.storage import LocalStorage

log = logging.getLogger("segmap.server.jobs")


@dataclass
class InFlight:
    """A prepared job handed to the executor, and what the runner last copied of it.

    ``seen`` is (stage, fraction, log length) as last written to the row, so an unchanged
    worker costs no database write; ``started`` is ``time.monotonic()`` at submission.
    """

    job: Prepared
    handle: TaskHandle
    seen: tuple[str, float, int] = ("", -1.0, -1)
    started: float = field(default_factory=time.monotonic)
    worker_pid: int | None = None  # as the worker reported it; for the service log only

    @property
    def job_id(self) -> int:
        return self.job.task.job_id

    @property
    def attempt(self) -> int:
        return self.job.task.attempt

    @property
    def work_dir(self) -> Path:
        return self.job.work_dir

    def note_worker(self, pid: int | None) -> None:
        """Record the worker's pid once it reports one, in the service log only (job logs
        never show pids: see ``redact``)."""
        if pid is None or pid == self.worker_pid:
            return
        self.worker_pid = pid
        log.info(
            "job %s attempt %s runs in worker pid %s on %s",
            self.job_id,
            self.attempt,
            pid,
            socket.gethostname(),
        )

    def worker_log(self) -> str:
        """The worker's log so far ('' before it writes one)."""
        with contextlib.suppress(OSError):
            return (self.work_dir / LOG_FILE).read_text(encoding="utf-8")
        return ""

    def progress(self) -> tuple[str, float, int | None]:
        """The worker's current (stage, fraction done in [0, 1], its pid if it said);
        ('', 0.0, None) before any report."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads((self.work_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
            pid = data.get("worker_pid")
            return (
                str(data["stage"]),
                float(data["progress"]),
                pid if isinstance(pid, int) else None,
            )
        return "", 0.0, None


def store_outputs(
    database: Database,
    storage: LocalStorage,
    token: str,
    flight: InFlight,
    files: dict[str, Path],
) -> list[str] | None:
    """Store a finished job's files as its scan's derived folder; the stored file names,
    or None when the job is no longer this runner's (``token``) and nothing was stored.

    Raises the ``SegmapError``/``ServiceError`` of a refused store (nothing stored then).
    """
    job = flight.job
    with database.session(write=True) as db:
        # The job's row stays locked until the folder switch commits, so no other runner
        # takes the job over between the check and the switch.
        if not leases.owns(db, flight.job_id, token, lock=True):
            return None
        folder = replace_derived_resource(
            db, storage, job.scan_id, job.folder_label, files, model=job.model_id
        )
        # Kept per collection too, as the folder holds only the scan's latest conversion:
        # datasets compare the collections of a scan (their QA's agreement table).
        keep_collection_mask(db, storage, flight.job_id, files)
        # The derived SEG becomes a series of the session's study for DICOMweb (and so
        # for OHIF); after the folder switch committed, so a failure here loses nothing.
        scan = db.get(Scan, job.scan_id)
        session = db.get(ImagingSession, scan.session_id) if scan is not None else None
        if session is not None:
            index_derived_seg(db, storage, folder, session)
            db.commit()
        return [f.name for f in folder.files]
