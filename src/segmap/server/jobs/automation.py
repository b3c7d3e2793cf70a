"""Automation: when an ROI collection is stored, queue a job for every automated model.

:func:`on_collection_stored` is an ``ImagingEvents`` listener; the app factory registers
it, so imaging never imports jobs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from segmap.server.db.imaging import ImagingSession, RoiCollection
from segmap.server.db.jobs import Job
from segmap.server.db.registry import MLModel
from segmap.server.jobs.queue import TRIGGER_AUTOMATION, queue_job
from segmap.server.web.auth import Principal


def on_collection_stored(
    db: Session, principal: Principal | None, collection: RoiCollection
) -> list[Job]:
    """Queue one job per model of the collection's project with automation on (committed).

    Called by the ROI collection upload once the collection is stored; the uploader's
    permission was checked there.
    """
    session = db.get(ImagingSession, collection.session_id)
    if session is None:
        return []
    models = db.scalars(
        select(MLModel)
        .where(MLModel.project_id == session.project_id, MLModel.automation.is_(True))
        .order_by(MLModel.label_key)
    ).all()
    jobs = [queue_job(db, m, collection, principal, TRIGGER_AUTOMATION) for m in models]
    db.commit()
    return jobs
