"""An import by hand is run by one service at a time: claimed with a lease, renewed.

The lease itself (claiming with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
renewing, every change ``WHERE runner = <token> AND state = 'running'``, taking back an
import whose service died once its lease expired) is :mod:`segmap.server.db.leases`, on
the ``archive_imports`` table, as for jobs and datasets. Here is what is the imports'
own: a project's follower claims that project's imports only (it holds the connection
they are fetched through), one whose services died ``MAX_ATTEMPTS`` times fails, and
:func:`renewer` keeps the lease alive on a thread while the import runs.

So several services on one database (each with its followers) never run one import
twice, and a service starting does not disturb an import another one is running; an
import left by a service that died is taken over when its lease runs out. The command
line (``segmap archive import``) holds its import the same way, with a lease of its own.
"""

from __future__ import annotations

from typing import Any

from segmap.server.db.archive import IMPORT_FAILED, IMPORT_QUEUED, IMPORT_RUNNING, ArchiveImport
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.leases import RELEASED, Lease, LeasedTable, Renewer

MAX_ATTEMPTS = 3
"""An import started this many times without finishing (its service died each time) fails."""

CANDIDATES = 5
"""Rows read per claim: past any that fail on ``MAX_ATTEMPTS`` to the one that is won."""

IMPORTS = LeasedTable(
    ArchiveImport, queued=IMPORT_QUEUED, running=IMPORT_RUNNING, failed=IMPORT_FAILED
)
"""The lease mechanism on the ``archive_imports`` table."""


def claim(database: Database, lease: Lease, project_id: str) -> int | None:
    """Claim the project's oldest claimable import (committed); its id, or None.

    Claimable: queued, or running under a lease that ran out. One whose services died
    ``MAX_ATTEMPTS`` times while running it fails instead, saying so.
    """
    won = IMPORTS.claim(
        database, lease, wanted=1, read=CANDIDATES, max_attempts=MAX_ATTEMPTS,
        where=ArchiveImport.project_id == project_id,
        failure=lambda row: (
            f"the service running this import stopped {row.attempts} times while it ran "
            "(killed, or out of memory?); ask for it again"
        ),
    )  # fmt: skip
    return won[0].id if won else None


def change(database: Database, import_id: int, token: str, **values: Any) -> bool:
    """Set ``values`` on a running import ``token`` holds (committed); False when lost."""
    return IMPORTS.change_owned(database, import_id, token, **values)


def finish(database: Database, import_id: int, token: str, **values: Any) -> bool:
    """Set the final ``values`` (its state among them) and release it; False when lost."""
    return IMPORTS.change_owned(
        database, import_id, token, finished_at=utcnow(), **RELEASED, **values
    )


def release(database: Database, import_id: int, token: str, why: str) -> None:
    """Put an import ``token`` holds back in the queue (for any service), saying why."""
    IMPORTS.change_owned(
        database,
        import_id,
        token,
        state=IMPORT_QUEUED,
        progress=0.0,
        stage=why[:255],
        **RELEASED,
    )


def renewer(database: Database, lease: Lease, import_id: int) -> Renewer:
    """Renews the import's lease on a thread while it runs (see :class:`Renewer`)."""
    return IMPORTS.renewer(database, lease, import_id, f"archive import {import_id}")
