"""A dataset's row is changed only by the service holding its lease while it freezes.

The lease itself (claiming with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
renewing, every change ``WHERE runner = <token> AND state = 'freezing'``, taking back the
datasets of a service that died) is :mod:`segmap.server.db.leases`, on the datasets
table, as for jobs. Here is what is the datasets' own: a worker claims one dataset at a
time, one whose services died ``MAX_ATTEMPTS`` times fails, and finishing records the
frozen store.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from segmap.server.db.base import utcnow
from segmap.server.db.datasets import (
    DATASET_FAILED,
    DATASET_FREEZING,
    DATASET_QUEUED,
    DATASET_READY,
    Dataset,
)
from segmap.server.db.engine import Database
from segmap.server.db.leases import RELEASED, Lease, LeasedTable

MAX_ATTEMPTS = 3
"""Freezing started this many times without finishing (its service died each time) fails."""

CANDIDATES = 5
"""Rows read per claim: past any that fail on ``MAX_ATTEMPTS`` to the one that is won."""

DATASETS = LeasedTable(
    Dataset, queued=DATASET_QUEUED, running=DATASET_FREEZING, failed=DATASET_FAILED
)
"""The lease mechanism on the datasets table."""


def claim(database: Database, lease: Lease) -> int | None:
    """Claim the oldest claimable dataset (committed); its id, or None.

    A dataset whose services died ``MAX_ATTEMPTS`` times while freezing it fails instead.
    """
    won = DATASETS.claim(
        database, lease, wanted=1, read=CANDIDATES, max_attempts=MAX_ATTEMPTS,
        failure=lambda row: (
            f"the service freezing this dataset stopped {row.attempts} times while it ran "
            "(killed, or out of memory?)"
        ),
    )  # fmt: skip
    return won[0].id if won else None


def report_progress(
    database: Database, dataset_id: int, token: str, stage: str, progress: float
) -> bool:
    """Record what freezing is doing (0..1); False when ``token`` no longer holds it."""
    return DATASETS.change_owned(
        database, dataset_id, token, stage=stage[:128], progress=max(0.0, min(1.0, progress))
    )


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
        "finished_at": utcnow(),
        "stage": "failed" if error else "ready",
        **RELEASED,
    }
    if not error:
        values.update(progress=1.0, case_count=case_count, store_key=store_key)
    return DATASETS.change_owned(database, dataset_id, token, **values)


def release(database: Database, dataset_id: int, token: str, why: str) -> None:
    """Put a dataset ``token`` holds back in the queue (for any service), saying why."""
    DATASETS.change_owned(
        database,
        dataset_id,
        token,
        state=DATASET_QUEUED,
        progress=0.0,
        stage=why[:128],
        **RELEASED,
    )


def any_claimable(database: Database) -> bool:
    """Whether some dataset waits to be frozen (a cheap read)."""
    return DATASETS.any_claimable(database)


def live_ids(database: Database) -> set[int]:
    """Ids of every dataset row (to tell a store left by a deleted model from a live one)."""
    with database.session() as db:
        return {int(i) for i in db.scalars(select(Dataset.id))}
