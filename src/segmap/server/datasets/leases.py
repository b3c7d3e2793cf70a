"""A dataset's row is changed only by the service holding its lease while it freezes.

The same idea as the jobs' leases (:mod:`segmap.server.jobs.leases`), on the datasets
table: a worker claims the oldest dataset that is queued, or freezing under a lease that
has expired (its service died), with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
and the one-writer transaction on SQLite; the update repeats the claim condition and its
row count says whether the dataset was won. While freezing, the worker renews the lease;
every later change is an ``UPDATE ... WHERE runner = <token> AND state = 'freezing'``, so a
worker that lost its dataset to another service changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update

from segmap.server.db.base import utcnow
from segmap.server.db.datasets import (
    DATASET_FAILED,
    DATASET_FREEZING,
    DATASET_QUEUED,
    DATASET_READY,
    Dataset,
)
from segmap.server.db.engine import Database

MAX_ATTEMPTS = 3
"""Freezing started this many times without finishing (its service died each time) fails."""


@dataclass(frozen=True)
class Lease:
    """A worker's claim: its ``token`` and how long a claim lasts unrenewed (seconds)."""

    token: str
    duration_s: float

    def expiry(self, now: datetime) -> datetime:
        """When a claim made or renewed at ``now`` lapses."""
        return now + timedelta(seconds=self.duration_s)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        Dataset.state == DATASET_QUEUED,
        and_(
            Dataset.state == DATASET_FREEZING,
            or_(Dataset.lease_expires_at.is_(None), Dataset.lease_expires_at < now),
        ),
    )


def _owned(dataset_id: int, token: str) -> ColumnElement[bool]:
    return and_(
        Dataset.id == dataset_id, Dataset.state == DATASET_FREEZING, Dataset.runner == token
    )


def claim(database: Database, lease: Lease) -> int | None:
    """Claim the oldest claimable dataset (committed); its id, or None.

    A dataset whose services died ``MAX_ATTEMPTS`` times while freezing it fails instead.
    """
    now = utcnow()
    with database.session(write=True) as db:
        rows = db.execute(
            select(Dataset.id, Dataset.state, Dataset.attempts)
            .where(_claimable(now))
            .order_by(Dataset.id)
            .limit(5)
            .with_for_update(skip_locked=True)
        ).all()
        won = None
        for dataset_id, state, attempts in rows:
            if state == DATASET_FREEZING and attempts >= MAX_ATTEMPTS:
                db.execute(
                    update(Dataset)
                    .where(Dataset.id == dataset_id, _claimable(now))
                    .values(
                        state=DATASET_FAILED,
                        error=f"the service freezing this dataset stopped {attempts} times "
                        "while it ran (killed, or out of memory?)",
                        runner=None,
                        lease_expires_at=None,
                        finished_at=now,
                        stage="failed",
                    )
                )
                continue
            values: dict[str, Any] = {
                "state": DATASET_FREEZING,
                "runner": lease.token,
                "lease_expires_at": lease.expiry(now),
                "attempts": Dataset.attempts + 1,
                "started_at": now,
                "finished_at": None,
                "progress": 0.0,
                "stage": "starting",
                "error": None,
            }
            result = db.execute(
                update(Dataset).where(Dataset.id == dataset_id, _claimable(now)).values(**values)
            )
            if getattr(result, "rowcount", 0) == 1:
                won = int(dataset_id)
                break
        db.commit()
    return won


def renew(database: Database, lease: Lease, dataset_id: int) -> bool:
    """Extend the lease on ``dataset_id`` (committed); False when it is no longer ours."""
    with database.session(write=True) as db:
        result = db.execute(
            update(Dataset)
            .where(_owned(dataset_id, lease.token))
            .values(lease_expires_at=lease.expiry(utcnow()))
        )
        db.commit()
    return getattr(result, "rowcount", 0) == 1


def report_progress(
    database: Database, dataset_id: int, token: str, stage: str, progress: float
) -> bool:
    """Record what freezing is doing (0..1); False when ``token`` no longer holds it."""
    with database.session(write=True) as db:
        result = db.execute(
            update(Dataset)
            .where(_owned(dataset_id, token))
            .values(stage=stage[:128], progress=max(0.0, min(1.0, progress)))
        )
        db.commit()
    return getattr(result, "rowcount", 0) == 1


def finish(
    database: Database,
    dataset_id: int,
    token: str,
    *,
    error: str | None = None,
    case_count: int | None = None,
    store_key: str | None = None,
) -> bool:
    """Mark the dataset ready (no ``error``) or failed, and release it; False when lost."""
    values: dict[str, Any] = {
        "state": DATASET_FAILED if error else DATASET_READY,
        "error": error,
        "runner": None,
        "lease_expires_at": None,
        "finished_at": utcnow(),
        "stage": "failed" if error else "ready",
    }
    if not error:
        values.update(progress=1.0, case_count=case_count, store_key=store_key)
    with database.session(write=True) as db:
        result = db.execute(update(Dataset).where(_owned(dataset_id, token)).values(**values))
        db.commit()
    return getattr(result, "rowcount", 0) == 1


def release(database: Database, dataset_id: int, token: str, why: str) -> None:
    """Put a dataset ``token`` holds back in the queue (for any service), saying why."""
    with database.session(write=True) as db:
        db.execute(
            update(Dataset)
            .where(_owned(dataset_id, token))
            .values(
                state=DATASET_QUEUED,
                runner=None,
                lease_expires_at=None,
                progress=0.0,
                stage=why[:128],
            )
        )
        db.commit()


def any_claimable(database: Database) -> bool:
    """Whether some dataset waits to be frozen (a cheap read)."""
    with database.session() as db:
        found = db.scalar(select(Dataset.id).where(_claimable(utcnow())).limit(1))
    return found is not None


def live_ids(database: Database) -> set[int]:
    """Ids of every dataset row (to tell a store left by a deleted model from a live one)."""
    with database.session() as db:
        return {int(i) for i in db.scalars(select(Dataset.id))}
