"""Conversion jobs as users see them: queued by hand or by automation, listed, read.

* :func:`start_conversion` — an owner converts one collection, or every collection of
  the project, with one model.
* :func:`queue_job` — the one way a job row is made (automation uses it too).
* :func:`get_job`, :func:`list_jobs` — readers (every project role) see jobs.

A job waiting in the queue for the same model and collection is reused rather than
doubled: when it runs it reads the collection as it is then. Running the jobs is the job
runner's business (``runner``); these functions only write rows.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from segmap.server.db.imaging import RoiCollection
from segmap.server.db.jobs import JOB_QUEUED, JOB_STATES, Job
from segmap.server.db.registry import MLModel
from segmap.server.errors import Forbidden, NotFound, Unprocessable
from segmap.server.imaging.collections import find_collection, project_collections
from segmap.server.registry.access import project_access, require_manage
from segmap.server.registry.mlmodels import find_model, get_model
from segmap.server.registry.regionmap import REGION_MAP_FILENAME, has_region_map
from segmap.server.web.auth import Principal, require_principal

TRIGGER_AUTOMATION = "automation"
TRIGGER_MANUAL = "manual"
MAX_LISTED = 1000


def queue_job(
    db: Session,
    model: MLModel,
    collection: RoiCollection,
    principal: Principal | None,
    trigger: str,
) -> Job:
    """A queued job for (model, collection): the waiting one if there is one, else new."""
    waiting = db.scalar(
        select(Job).where(
            Job.model_id == model.id,
            Job.collection_id == collection.id,
            Job.state == JOB_QUEUED,
        )
    )
    if waiting is not None:
        return waiting
    job = Job(
        project_id=model.project_id,
        model_id=model.id,
        collection_id=collection.id,
        state=JOB_QUEUED,
        progress=0.0,
        stage="waiting for a worker",
        log="",
        attempts=0,
        trigger=trigger,
        created_by_id=principal.id if principal is not None else None,
    )
    db.add(job)
    return job


def start_conversion(
    db: Session,
    principal: Principal | None,
    project_id: str,
    model_ref: str | int,
    collection: str | int | None = None,
) -> list[Job]:
    """Queue conversions with one model (committed). Owners and site admins.

    ``collection`` None means every ROI collection of the project. Raises
    ``Unprocessable`` when the model has no region map or the project no collection.
    """
    access, model = get_model(db, principal, project_id, model_ref)
    require_manage(access, "start conversions")
    if not has_region_map(db, model):
        raise Unprocessable(
            f"model {model.label!r} has no region map yet; upload {REGION_MAP_FILENAME} "
            "into one of its folders (Manage Files) first"
        )
    if collection is not None and str(collection).strip() != "":
        targets = [find_collection(db, access, collection)]
    else:
        targets = project_collections(db, access.project.id)
        if not targets:
            raise Unprocessable(
                f"project {access.project.id!r} has no ROI collections to convert; upload "
                "an RTSTRUCT or SEG onto a session first"
            )
    jobs = [queue_job(db, model, c, access.principal, TRIGGER_MANUAL) for c in targets]
    db.commit()
    return jobs


def get_job(db: Session, principal: Principal | None, job_id: int | str) -> Job:
    """One job, for any member of its project.

    A job of a project the caller cannot see answers 404 exactly like a job that does
    not exist (a 403 would confirm the job and name its project); anonymous callers get
    401 either way.
    """
    require_principal(principal)
    text = str(job_id).strip()
    job = db.get(Job, int(text)) if text.isdigit() else None
    missing = NotFound(f"there is no job {text!r} you can see")
    if job is None:
        raise missing
    try:
        project_access(db, principal, job.project_id)
    except Forbidden:
        raise missing from None
    return job


def list_jobs(
    db: Session,
    principal: Principal | None,
    project_id: str,
    *,
    state: str | None = None,
    model_ref: str | int | None = None,
    limit: int = 200,
) -> list[Job]:
    """The project's jobs, newest first, optionally of one state or one model."""
    access = project_access(db, principal, project_id)
    query = select(Job).where(Job.project_id == access.project.id)
    if state:
        if state not in JOB_STATES:
            raise Unprocessable(f"state must be one of {', '.join(JOB_STATES)}, got {state!r}")
        query = query.where(Job.state == state)
    if model_ref is not None and str(model_ref).strip():
        query = query.where(Job.model_id == find_model(db, access, model_ref).id)
    limit = max(1, min(int(limit), MAX_LISTED))
    query = query.options(selectinload(Job.model), selectinload(Job.collection))
    return list(db.scalars(query.order_by(Job.id.desc()).limit(limit)))
