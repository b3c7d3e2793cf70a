"""The dataset worker: a thread of the service that freezes queued datasets one at a time.

The datasets table is the queue (:mod:`.leases`): the worker claims the oldest dataset
that is queued (or whose freezing service died, once its lease expired), freezes it
(:mod:`.freezer`) while a second thread renews the lease every third of it
(``Settings.job_lease_s``, as for jobs), and marks it ready or failed. Freezing is
mostly reading files and counting voxels, so one thread is enough and keeps the
service's memory to one case at a time.

A graceful stop interrupts a freeze at its next progress report and puts the dataset
back in the queue; the next start (of this or any service on the database) freezes it
again from the beginning. A dataset lost to another service (this one stalled past its
lease) is dropped: only the holder of the lease marks it ready.

Test hook: ``SEGMAP_DATASET_CASE_DELAY_S`` (read by :mod:`.lifespan`) makes the worker
wait that many seconds after each case it measures, so tests can stop the service in
the middle of a freeze. It is 0 in normal use.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

from segmap.datasets.errors import DatasetError
from segmap.server.datasets import leases
from segmap.server.datasets.conversions import SourcePaths
from segmap.server.datasets.freezer import freeze_dataset, stores_root
from segmap.server.db.engine import Database
from segmap.server.db.leases import Lease, holder_token
from segmap.server.errors import ServiceError
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage

log = logging.getLogger("segmap.server.datasets")

CASE_DELAY_ENV = "SEGMAP_DATASET_CASE_DELAY_S"
PROGRESS_EVERY_S = 0.5  # at most this often a progress report writes the row


class Interrupted(Exception):
    """Freezing stops: the service is stopping, or the dataset's lease was lost."""


class DatasetWorker:
    """Freezes datasets for one service; ``start()``/``stop()`` follow the app's lifespan.

    Args:
        database, storage, settings: the app's.
        paths: the API paths recorded as where each file came from.
        poll_s: how often it looks for queued datasets when not woken, in seconds.
        case_delay_s: test hook, see the module doc.
    """

    def __init__(
        self,
        database: Database,
        storage: LocalStorage,
        settings: Settings,
        paths: SourcePaths,
        *,
        poll_s: float = 2.0,
        case_delay_s: float = 0.0,
    ) -> None:
        self.database = database
        self.storage = storage
        self.paths = paths
        self.poll_s = poll_s
        self.case_delay_s = case_delay_s
        self.lease = Lease(holder_token(), settings.job_lease_s)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Remove stores of deleted datasets, then start the worker thread."""
        self.sweep_orphans()
        self._thread = threading.Thread(target=self._loop, name="segmap-datasets", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop; a dataset being frozen goes back to the queue."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def wake(self) -> None:
        """Look for queued datasets now rather than at the next poll."""
        self._wake.set()

    def sweep_orphans(self) -> int:
        """Delete the stores (and leftovers) of datasets that no longer exist; how many.

        A model's deletion removes its dataset rows (the database cascades), not their
        files; this finds them.
        """
        root = stores_root(self.storage)
        if not root.is_dir():
            return 0
        live = leases.live_ids(self.database)
        removed = 0
        for path in root.iterdir():
            digits = path.name.lstrip(".").removeprefix("work-").split(".")[0]
            if digits.isdigit() and int(digits) not in live:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = (
                    leases.claim(self.database, self.lease)
                    if leases.any_claimable(self.database)
                    else None
                )
                if claimed is not None:
                    self._run(claimed)
                    continue  # look for the next one at once
            except Exception:  # keep the worker alive whatever one round hit
                log.exception("dataset worker round failed; retrying")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _run(self, dataset_id: int) -> None:
        renewer = leases.DATASETS.renewer(
            self.database, self.lease, dataset_id, f"dataset {dataset_id}"
        )
        written = {"at": 0.0}
        step = {"word": ""}

        def progress(stage: str, fraction: float) -> None:
            if self._stop.is_set() or renewer.lost.is_set():
                raise Interrupted(stage)
            now, word = time.monotonic(), stage.split(" ")[0]
            if word != step["word"] or now - written["at"] >= PROGRESS_EVERY_S:
                written["at"], step["word"] = now, word
                leases.report_progress(self.database, dataset_id, self.lease.token, stage, fraction)
            if self.case_delay_s > 0 and stage.startswith("measuring"):
                self._stop.wait(self.case_delay_s)

        try:
            count, key = freeze_dataset(
                self.database, self.storage, dataset_id, self.paths, progress
            )
        except Interrupted:
            if renewer.lost.is_set():
                log.warning("dataset %s was taken over by another service", dataset_id)
            else:
                leases.release(
                    self.database,
                    dataset_id,
                    self.lease.token,
                    "waiting: the service stopped while freezing it",
                )
            return
        except (DatasetError, ServiceError) as exc:
            leases.finish(self.database, dataset_id, self.lease.token, error=str(exc))
            return
        except Exception as exc:
            log.exception("freezing dataset %s failed", dataset_id)
            leases.finish(
                self.database,
                dataset_id,
                self.lease.token,
                error=f"internal error ({type(exc).__name__}: {exc}); this is a bug in "
                "segmap, the service's log has the details",
            )
            return
        finally:
            renewer.stop()
        if leases.finish(
            self.database, dataset_id, self.lease.token, case_count=count, store_key=key
        ):
            return
        if dataset_id not in leases.live_ids(self.database):
            # Deleted while it froze: its store is nobody's.
            shutil.rmtree(self.storage.local_path(key), ignore_errors=True)
        else:
            log.warning(
                "dataset %s was taken over while freezing; its result is dropped", dataset_id
            )
