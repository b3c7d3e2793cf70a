"""A job's row is changed only by the runner holding its lease.

The lease itself (claiming with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
renewing, every change ``WHERE runner = <token> AND state = 'running'``, taking back the
jobs of a service that died) is :mod:`segmap.server.db.leases`, on the jobs table. Here is
what is the jobs' own: a job taken over says so in its log; one whose services died
``MAX_ATTEMPTS`` times fails; finishing, releasing and progress write its log and stage.

Everything written into a job's ``log`` and ``error`` here passes through
``redact.public_text``: users read them, server paths are not theirs to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.jobs import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, Job
from segmap.server.db.leases import Candidate, Lease, LeasedTable
from segmap.server.jobs.redact import public_text, runner_label

MAX_LOG_CHARS = 100_000
MAX_ATTEMPTS = 3

JOBS = LeasedTable(Job, queued=JOB_QUEUED, running=JOB_RUNNING, failed=JOB_FAILED)
"""The lease mechanism on the jobs table."""


def stamp(line: str) -> str:
    """A log line with the time (UTC, ``HH:MM:SS``)."""
    return f"{utcnow().strftime('%H:%M:%S')} {line}\n"


def clip(text: str) -> str:
    """A job log cut to its last ``MAX_LOG_CHARS`` characters."""
    if len(text) <= MAX_LOG_CHARS:
        return text
    return "[... earlier lines dropped ...]\n" + text[-MAX_LOG_CHARS:]


@dataclass(frozen=True)
class Claimed:
    """A job this runner won: its id and attempt number (1 for the first start)."""

    job_id: int
    attempt: int


def any_claimable(database: Database) -> bool:
    """Whether some job waits for a runner (a cheap read before starting an executor)."""
    return JOBS.any_claimable(database)


def claim(database: Database, lease: Lease, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` jobs, oldest first (committed).

    A job taken over from an expired lease gets a line in its log saying so; one whose
    services died ``MAX_ATTEMPTS`` times while running it fails instead of starting again.
    """
    won = JOBS.claim(
        database, lease, wanted=limit, read=limit, max_attempts=MAX_ATTEMPTS,
        failure=_failure, extra=_log_line,
    )  # fmt: skip
    return [Claimed(row.id, row.attempts + 1) for row in won]


def _failure(row: Candidate) -> str:
    return (
        f"the service running this job stopped {row.attempts} times while it ran (killed, "
        "or out of memory?); the scan may be too large for one service"
    )


def _log_line(row: Candidate, error: str | None) -> dict[str, Any]:
    """The line a claim adds to the job's log: why it failed, or that it runs again."""
    if error is not None:
        return {"log": Job.log + stamp(f"failed: {error}")}
    if not row.lapsed:
        return {}
    when = row.lease_expires_at.strftime("%H:%M:%S UTC") if row.lease_expires_at else None
    return {
        "log": Job.log
        + stamp(
            f"the service running this job (runner {runner_label(row.runner)}) stopped "
            f"while it ran; its lease ran out ({when or 'an older version'}), so it runs again"
        )
    }


def renew(database: Database, lease: Lease, job_ids: set[int]) -> set[int]:
    """Extend the leases of ``job_ids`` (committed); returns the ones no longer ours."""
    return JOBS.renew(database, lease, job_ids)


def owns(db: Session, job_id: int, token: str, *, lock: bool = False) -> bool:
    """Whether ``token`` holds the job now (``lock``: and keep its row locked till commit)."""
    query = select(Job.id).where(JOBS.owned(job_id, token))
    if lock:
        query = query.with_for_update()
    return db.scalar(query) is not None


def update_running(
    database: Database, job_id: int, token: str, *, stage: str, progress: float, log_text: str
) -> None:
    """Record a running job's stage, progress (0..1) and log, if ``token`` still holds it."""
    JOBS.change_owned(
        database,
        job_id,
        token,
        stage=public_text(stage)[:128],
        progress=max(0.0, min(1.0, progress)),
        log=public_text(log_text),
    )


def finish(
    database: Database,
    job_id: int,
    token: str,
    state: str,
    *,
    error: str | None = None,
    line: str | None = None,
    log_text: str | None = None,
    output_folder: str | None = None,
) -> bool:
    """Mark a job succeeded or failed and release it; False when ``token`` no longer holds it."""
    with database.session(write=True) as db:
        job = JOBS.held(db, job_id, token)
        if job is None:
            return False
        text = log_text if log_text is not None else (job.log or "")
        if line:
            text += stamp(line)
        if state == JOB_FAILED and error and not line:
            text += stamp(f"failed: {error.splitlines()[0]}")
        job.state = state
        job.error = public_text(error) if error is not None else None
        job.log = clip(public_text(text))
        job.finished_at = utcnow()
        job.runner = None
        job.lease_expires_at = None
        if state == JOB_SUCCEEDED:
            job.progress = 1.0
            job.stage = "done"
            job.output_folder = output_folder
        else:
            job.stage = "failed"
        db.commit()
    return True


def release(
    database: Database, job_id: int, token: str, why: str, log_text: str | None = None
) -> None:
    """Put a job ``token`` holds back in the queue (for any runner), saying why in its log."""
    with database.session(write=True) as db:
        job = JOBS.held(db, job_id, token)
        if job is None:
            return
        job.state = JOB_QUEUED
        job.runner = None
        job.lease_expires_at = None
        job.progress = 0.0
        job.stage = "waiting for a worker"
        text = (log_text if log_text is not None else job.log or "") + stamp(why)
        job.log = clip(public_text(text))
        db.commit()


def running_attempts(database: Database) -> set[tuple[int, int]]:
    """(job id, attempt) of every running job, whoever holds it."""
    with database.session() as db:
        rows = db.execute(select(Job.id, Job.attempts).where(Job.state == JOB_RUNNING)).all()
    return {(int(i), int(a)) for i, a in rows}


def mark_queued_waiting(database: Database, stage: str) -> None:
    """Say on every queued job why it waits (e.g. the executor cannot start)."""
    with database.session(write=True) as db:
        db.execute(update(Job).where(Job.state == JOB_QUEUED).values(stage=stage[:128]))
        db.commit()
