"""The background sweep of what crashes leave behind in storage.

Every ``interval_s`` seconds (the first time right after start-up) one thread deletes
stored imaging files no row refers to (``derived.sweep_unreferenced``: an upload or a
job that died between placing files and committing their rows) that are older than
``min_age_s``, and the staging folders of processes that have ended. Services sharing a
data folder may all sweep: each only deletes what no row and no live process owns.
The sweeper is kept at ``app.state.orphan_sweeper`` and stopped with the app.
"""

from __future__ import annotations

import logging
import threading

from segmap.server.db.engine import Database
from segmap.server.imaging.derived import sweep_unreferenced
from segmap.server.storage import LocalStorage

log = logging.getLogger("segmap.server.imaging")


class OrphanSweeper:
    """A thread that sweeps storage every ``interval_s`` seconds until stopped."""

    def __init__(
        self, database: Database, storage: LocalStorage, interval_s: float, min_age_s: float
    ) -> None:
        self.database = database
        self.storage = storage
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self.sweeps = 0  # completed sweeps, for the curious and the tests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sweeping (no thread when the interval is 0: sweeping is off)."""
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="segmap-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread (waits for a sweep under way to end)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the sweeping thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def sweep_once(self) -> tuple[int, int]:
        """One sweep now: (stored files removed, staging folders and files removed)."""
        with self.database.session() as db:
            files = sweep_unreferenced(db, self.storage, older_than_s=self.min_age_s)
        # This process's own staging files belong to uploads under way: never swept here.
        staged = self.storage.sweep_staging(include_own=False)
        return files, staged

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                files, staged = self.sweep_once()
            except Exception:  # keep sweeping later whatever one round hit
                log.exception("the storage sweep failed; it runs again in %s s", self.interval_s)
            else:
                self.sweeps += 1
                if files or staged:
                    log.info(
                        "storage sweep removed %d stored files no row refers to and %d "
                        "staging leftovers",
                        files,
                        staged,
                    )
            self._stop.wait(self.interval_s)
