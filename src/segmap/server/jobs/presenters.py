"""How a job is shown, by the API (``JobOut``) and by the Jobs page and its script alike.

The page's script (``static/jobs.js``) redraws rows from the API's JSON, so the links a
row needs (model page, session page, outputs) are part of the value too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import HTTPConnection

from segmap.server.db.jobs import JOB_SUCCEEDED, Job
from segmap.server.jobs.redact import runner_label
from segmap.server.registry.presenters import username
from segmap.server.web.auth import Principal
from segmap.server.web.pages import format_time
from segmap.server.web.urls import path_for


@dataclass(frozen=True)
class JobView:
    """A conversion job: what it converts, its state and progress (0..1), where it is."""

    id: int
    project: str
    model: str
    model_id: int
    collection: str
    collection_id: int
    collection_type: str
    session: int
    session_label: str
    scan: int
    state: str
    progress: float
    stage: str
    error: str | None
    attempts: int
    trigger: str
    output_folder: str | None
    runner: str | None
    lease_expires_at: datetime | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str
    resources_url: str
    model_url: str
    session_url: str
    log: str

    @property
    def progress_pct(self) -> int:
        """Progress in whole percent."""
        return int(round(100 * self.progress))

    @property
    def outputs_url(self) -> str:
        """Where a succeeded job's masks are shown ('' before that)."""
        return f"{self.session_url}#derived" if self.state == JOB_SUCCEEDED else ""

    @property
    def created_text(self) -> str:
        """When the job was queued, in UTC."""
        return format_time(self.created_at)

    @property
    def started_text(self) -> str:
        """When the current attempt started ('' when it has not)."""
        return format_time(self.started_at) if self.started_at else ""

    @property
    def finished_text(self) -> str:
        """When it finished ('' when it has not)."""
        return format_time(self.finished_at) if self.finished_at else ""

    @property
    def duration_text(self) -> str:
        """How long the last attempt took, in s or min ('' while it runs)."""
        if self.started_at is None or self.finished_at is None:
            return ""
        seconds = (self.finished_at - self.started_at).total_seconds()
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def present_job(conn: HTTPConnection, job: Job, viewer: Principal | None = None) -> JobView:
    """The job with its model, collection and session named, as ``viewer`` may see it.

    The runner holding a running job is its full token (host, process id) for site
    admins and its random label for everyone else.
    """
    collection = job.collection
    session = collection.session
    project = job.project_id
    return JobView(
        id=job.id,
        project=project,
        model=job.model.label,
        model_id=job.model_id,
        collection=collection.label,
        collection_id=job.collection_id,
        collection_type=collection.collection_type,
        session=collection.session_id,
        session_label=session.label if session is not None else str(collection.session_id),
        scan=collection.scan_id,
        state=job.state,
        progress=round(float(job.progress or 0.0), 4),
        stage=job.stage or "",
        error=job.error,
        attempts=job.attempts,
        trigger=job.trigger,
        output_folder=job.output_folder,
        runner=job.runner if viewer is not None and viewer.is_admin else runner_label(job.runner),
        lease_expires_at=job.lease_expires_at,
        created_by=username(job.created_by),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        url=path_for(conn, "api_get_job", job_id=job.id),
        resources_url=path_for(
            conn,
            "api_list_derived",
            project=project,
            session=collection.session_id,
            scan=collection.scan_id,
        ),
        model_url=path_for(conn, "model_page", project=project, model=job.model.label),
        session_url=path_for(conn, "session_page", project=project, session=collection.session_id),
        log=job.log or "",
    )
