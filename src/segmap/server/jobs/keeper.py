"""The lease keeper: a thread that renews the leases of the jobs a runner holds.

Renewing on a thread of its own keeps the leases alive while the dispatcher is busy
(storing a large job's outputs, say). Every third of the lease it renews them all in one
``UPDATE``; jobs that turn out not to be the runner's any more (it stalled past a lease
and another service took them over) are handed back through :meth:`take_lost`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from segmap.server.db.engine import Database
from segmap.server.db.leases import Lease
from segmap.server.jobs import leases

log = logging.getLogger("segmap.server.jobs")


class LeaseKeeper:
    """Holds the set of a runner's jobs and renews their leases until stopped.

    ``on_lost`` is called (on the keeper's thread) when some job was found lost.
    """

    def __init__(self, database: Database, lease: Lease, on_lost: Callable[[], None]) -> None:
        self.database = database
        self.lease = lease
        self.on_lost = on_lost
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start renewing."""
        self._thread = threading.Thread(target=self._loop, name="segmap-leases", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop renewing (the leases then run out unless the jobs were released)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def hold(self, job_id: int) -> None:
        """Renew this job's lease from now on."""
        with self._lock:
            self._held.add(job_id)

    def let_go(self, job_id: int) -> None:
        """Stop renewing this job's lease (finished, released or lost)."""
        with self._lock:
            self._held.discard(job_id)
            self._lost.discard(job_id)

    def take_lost(self) -> set[int]:
        """The jobs found lost since the last call; they are no longer held."""
        with self._lock:
            lost, self._lost = self._lost, set()
            self._held -= lost
        return lost

    def _loop(self) -> None:
        while not self._stop.wait(self.lease.duration_s / 3):
            with self._lock:
                held = set(self._held)
            try:
                lost = leases.renew(self.database, self.lease, held)
            except Exception:  # the database may be away for a moment; try next round
                log.exception("renewing the leases of jobs %s failed", sorted(held))
                continue
            if lost:
                log.warning("jobs %s were taken over by another runner", sorted(lost))
                with self._lock:
                    self._lost |= lost & self._held
                self.on_lost()
