"""Rows worked on by one service at a time: claimed with a lease, renewed, taken back.

A feature whose rows are worked on in the background (jobs, datasets, archive imports)
keeps on each row its ``state``, the ``runner`` token of the service holding it and a
``lease_expires_at``.
This module is that mechanism for any such table (:class:`LeasedTable`), claiming
included; the feature (``jobs.leases``, ``datasets.leases``, ``archive.import_leases``)
says how many rows it claims at once, which (a condition of its own), how many starts
without finishing fail a row and with what sentence, and what else a claim writes.

Claiming: a service takes queued rows, and running rows whose lease has expired (their
service died), oldest first. On PostgreSQL the candidates are read with ``SELECT ... FOR
UPDATE SKIP LOCKED``, so two services claiming at once lock different rows and neither
waits for the other; each row is then switched to the running state with this service as
its owner and a lease expiry. On SQLite a write transaction (``BEGIN IMMEDIATE``) admits
one writer at a time across every process, so the same read and update cannot
interleave. Either way the update repeats the claim condition, and its row count says
whether the row was won.

Owning: the service renews its leases on a timer (:meth:`LeasedTable.renew`); every later
change is an ``UPDATE ... WHERE runner = <token> AND state = <running>``, so a service
that lost a row (it stalled past its lease and another took the row) changes nothing.

:class:`Renewer` is the renewing thread for one lease (a row here, or any other lease
given as a function, as the archive follower's hold on its connection), and
:func:`holder_token` the token every lease holder of a process is named by.

Times come from each service's own clock (UTC); services sharing a database need
synchronised clocks, and the lease should be long against their skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database

log = logging.getLogger("segmap.server.leases")


class LeasedRow(Protocol):
    """The columns a leased table has (``jobs``, ``datasets``), as its rows read them."""

    id: int
    state: str
    runner: str | None
    lease_expires_at: datetime | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    progress: float
    stage: str
    error: str | None


RowT = TypeVar("RowT", bound=LeasedRow)


def holder_token() -> str:
    """A token naming this process as a lease holder: host, process id and a random part
    (at most 48 characters: the ``runner`` columns are 64)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """A service's claim on its rows: its ``token`` and how long a claim lasts unrenewed (s)."""

    token: str
    duration_s: float

    def expiry(self, now: datetime) -> datetime:
        """When a claim made or renewed at ``now`` lapses."""
        return now + timedelta(seconds=self.duration_s)


RELEASED: dict[str, Any] = {"runner": None, "lease_expires_at": None}
"""The values that end a lease (the row finished, failed or back in the queue)."""


@dataclass(frozen=True)
class Candidate:
    """A row a claim read: ``lapsed`` when it was running under a lease that ran out (or
    never had one: its service died), otherwise it was queued. ``attempts``: how many
    times it was started before this claim."""

    id: int
    lapsed: bool
    runner: str | None
    attempts: int
    lease_expires_at: datetime | None


ExtraValues = Callable[[Candidate, str | None], dict[str, Any]]
"""More column values for a row a claim takes (error None) or fails (with that error)."""


def _won(result: Any) -> bool:
    return getattr(result, "rowcount", 0) == 1


@dataclass(frozen=True)
class LeasedTable(Generic[RowT]):
    """The lease mechanism on one table: its mapped class and its state names."""

    model: type[RowT]
    queued: str
    running: str
    failed: str

    @property
    def _columns(self) -> Any:
        # The mapped class, for its columns in SQL expressions: typed through the protocol
        # its rows read as values, the class-level attributes are columns only at run time.
        return self.model

    def claimable(self, now: datetime) -> ColumnElement[bool]:
        """Queued, or running under a lease that lapsed before ``now`` (or never had one)."""
        m = self._columns
        return or_(
            m.state == self.queued,
            and_(
                m.state == self.running,
                or_(m.lease_expires_at.is_(None), m.lease_expires_at < now),
            ),
        )

    def owned(self, row_id: int, token: str) -> ColumnElement[bool]:
        """Row ``row_id``, running and held by ``token``."""
        m = self._columns
        return and_(m.id == row_id, m.state == self.running, m.runner == token)

    def any_claimable(self, database: Database) -> bool:
        """Whether some row waits for a service (a cheap read before claiming)."""
        with database.session() as db:
            found = db.scalar(select(self._columns.id).where(self.claimable(utcnow())).limit(1))
        return found is not None

    def claim(
        self,
        database: Database,
        lease: Lease,
        *,
        wanted: int,
        read: int,
        max_attempts: int,
        failure: Callable[[Candidate], str],
        where: ColumnElement[bool] | None = None,
        extra: ExtraValues | None = None,
    ) -> list[Candidate]:
        """Claim up to ``wanted`` claimable rows (also matching ``where``), oldest first,
        from the ``read`` oldest (committed); the ones won, as they were read.

        A lapsed row already started ``max_attempts`` times (its services kept dying)
        fails instead, with the error ``failure(row)``. ``extra(row, error)`` gives more
        values to set on a row taken (``error`` None) or failed.
        """
        if wanted <= 0:
            return []
        now = utcnow()
        won: list[Candidate] = []
        with database.session(write=True) as db:
            for row in self._candidates(db, now, read, where):
                if len(won) == wanted:
                    break
                if row.lapsed and row.attempts >= max_attempts:
                    error = failure(row)
                    more = extra(row, error) if extra else {}
                    self._give_up(db, row.id, now, error, **more)
                elif self._take(db, row.id, lease, now, **(extra(row, None) if extra else {})):
                    won.append(row)
            db.commit()
        return won

    def _candidates(
        self, db: Session, now: datetime, limit: int, where: ColumnElement[bool] | None
    ) -> list[Candidate]:
        """Up to ``limit`` claimable rows, oldest first, locked (skipping locked ones)."""
        m = self._columns
        query = select(m.id, m.state, m.runner, m.attempts, m.lease_expires_at).where(
            self.claimable(now)
        )
        if where is not None:
            query = query.where(where)
        rows = db.execute(query.order_by(m.id).limit(limit).with_for_update(skip_locked=True))
        return [
            Candidate(int(i), state == self.running, runner, attempts, expires)
            for i, state, runner, attempts, expires in rows
        ]

    def _take(self, db: Session, row_id: int, lease: Lease, now: datetime, **values: Any) -> bool:
        """Switch a candidate to running under ``lease`` (with ``values``); whether it was won.

        Its attempts count one more; started now, progress 0, stage "starting", no error.
        """
        m = self._columns
        claim: dict[str, Any] = {
            "state": self.running,
            "runner": lease.token,
            "lease_expires_at": lease.expiry(now),
            "attempts": m.attempts + 1,
            "started_at": now,
            "finished_at": None,
            "progress": 0.0,
            "stage": "starting",
            "error": None,
        }
        result = db.execute(
            update(m).where(m.id == row_id, self.claimable(now)).values(**claim, **values)
        )
        return _won(result)

    def _give_up(self, db: Session, row_id: int, now: datetime, error: str, **values: Any) -> None:
        """Fail a candidate instead of claiming it, with ``error``."""
        m = self._columns
        db.execute(
            update(m)
            .where(m.id == row_id, self.claimable(now))
            .values(
                state=self.failed,
                error=error,
                finished_at=now,
                stage="failed",
                **RELEASED,
                **values,
            )
        )

    def renew(self, database: Database, lease: Lease, row_ids: set[int]) -> set[int]:
        """Extend the leases of ``row_ids`` (committed); returns the ones no longer ours."""
        if not row_ids:
            return set()
        m = self._columns
        ours_now = and_(m.id.in_(row_ids), m.runner == lease.token, m.state == self.running)
        with database.session(write=True) as db:
            db.execute(update(m).where(ours_now).values(lease_expires_at=lease.expiry(utcnow())))
            ours = {int(i) for i in db.scalars(select(m.id).where(ours_now))}
            db.commit()
        return set(row_ids) - ours

    def renewer(self, database: Database, lease: Lease, row_id: int, what: str) -> Renewer:
        """A :class:`Renewer` of ``lease`` on row ``row_id`` (``what``: the row, for the log)."""
        return Renewer(lambda: not self.renew(database, lease, {row_id}), lease, what)

    def change_owned(self, database: Database, row_id: int, token: str, **values: Any) -> bool:
        """Set ``values`` on the row if ``token`` holds it (committed); whether it did."""
        with database.session(write=True) as db:
            result = db.execute(
                update(self.model).where(self.owned(row_id, token)).values(**values)
            )
            db.commit()
        return _won(result)

    def held(self, db: Session, row_id: int, token: str, *, lock: bool = True) -> RowT | None:
        """The row if ``token`` holds it (``lock``: kept locked till commit), else None."""
        query = select(self.model).where(self.owned(row_id, token))
        if lock:
            query = query.with_for_update()
        return db.scalar(query)


class Renewer:
    """Renews one lease on a thread, every third of ``lease.duration_s``, until stopped.

    ``renew()`` extends the lease (committed) and says whether it is still ours; once it
    is not (this process stalled past the lease and another took over), ``lost`` is set
    and renewing ends. A renewal that fails (the database away for a moment) is logged
    as about ``what`` and tried again at the next turn.
    """

    def __init__(self, renew: Callable[[], bool], lease: Lease, what: str) -> None:
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._loop,
            args=(renew, lease.duration_s / 3, what),
            name=f"segmap-lease {what}"[:60],
            daemon=True,
        )
        self._thread.start()

    def _loop(self, renew: Callable[[], bool], every_s: float, what: str) -> None:
        while not self._done.wait(every_s):
            try:
                if not renew():
                    self.lost.set()
                    return
            except Exception:  # the database away for a moment: try at the next turn
                log.exception("renewing the lease of %s failed", what)

    def stop(self) -> None:
        """Stop renewing (the work finished, was released or lost)."""
        self._done.set()
        self._thread.join(timeout=30)
