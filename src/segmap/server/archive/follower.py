"""The follower of one connected project: a thread of ``segmap serve``.

Each round it reads the connection (a changed ``generation`` or a deleted row ends the
thread; :mod:`.lifespan` starts a new one for new settings), claims and runs the imports
asked for by hand (:mod:`.manual`, leased so that of several services on one database
one runs each), then, if it holds the connection's lease (:mod:`.follow_lease`: of
several services one follows each archive), one step of following (:mod:`.follow_steps`)
and, with ``push_masks``, the pushes (:mod:`.push`). Then it notes the contact and waits
``poll_s`` (none while Orthanc says more changes wait). A follower ending lets go of the
connection, so another service's follower takes over at its next round. When the
archive cannot be reached or refuses, the error is stored on the connection (the
project's Archive page shows it) and the follower waits twice as long each time, from
``backoff_min_s`` up to ``backoff_max_s``, trying again until it works: nothing is
skipped meanwhile, since the cursor only moves past what was done. Passwords never
reach the log: errors name the URL only.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from segmap.server.archive import follow_lease, manual
from segmap.server.archive.clients import (
    ArchiveClient,
    ArchiveError,
    DicomwebClient,
    OrthancClient,
    client_for,
)
from segmap.server.archive.connections import password_of
from segmap.server.archive.follow_steps import DicomwebPoll, dicomweb_step, orthanc_step
from segmap.server.archive.importer import ImportTarget
from segmap.server.archive.push import pending_pushes, push_one
from segmap.server.archive.secrets import SecretBox, SecretKeyError
from segmap.server.db.accounts import User
from segmap.server.db.archive import ArchiveConnection
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.leases import Lease, Renewer, holder_token
from segmap.server.imaging.events import ImagingEvents
from segmap.server.settings import DEFAULT_JOB_LEASE_S
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import principal_of

log = logging.getLogger("segmap.server.archive")


@dataclass(frozen=True)
class FollowerTiming:
    """How often followers look (seconds); tests and benchmarks make them short."""

    poll_s: float = 1.0
    dicomweb_poll_s: float = 10.0
    sweep_s: float = 600.0
    overlap_days: int = 1
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    watch_s: float = 1.0  # how often the manager looks for changed connections


def _new_lease() -> Lease:
    return Lease(holder_token(), DEFAULT_JOB_LEASE_S)


@dataclass(frozen=True)
class ServiceParts:
    """What a follower uses of the service; ``lease``: the service's claim on the
    imports by hand it runs (one token for all its followers)."""

    database: Database
    storage: LocalStorage
    events: ImagingEvents
    box: SecretBox
    max_file_bytes: int
    timing: FollowerTiming = field(default_factory=FollowerTiming)
    lease: Lease = field(default_factory=_new_lease)


class Unusable(ArchiveError):
    """The connection cannot be used as stored (its account, its password's key)."""


def open_connection(
    parts: ServiceParts, row: ArchiveConnection
) -> tuple[ImportTarget, ArchiveClient]:
    """The import target and client of a connection row (its session still open)."""
    user = None
    with parts.database.session() as db:
        if row.connected_by_id is not None:
            user = db.get(User, row.connected_by_id)
        if user is None or not user.is_active:
            raise Unusable(
                "the account that connected the archive is gone or disabled; an "
                "owner or site admin must save the connection again"
            )
        principal = principal_of(user, "archive")
    try:
        password = password_of(row, parts.box)
    except SecretKeyError as exc:
        raise Unusable(str(exc)) from exc
    target = ImportTarget(
        parts.database,
        parts.storage,
        parts.events,
        row.project_id,
        principal,
        parts.max_file_bytes,
        dict(row.filter or {}),
        row.prefetch_images,
    )
    return target, client_for(row.kind, row.url, row.username, password)


class Follower(threading.Thread):
    """Follows one project's archive until stopped or its connection changes."""

    def __init__(self, parts: ServiceParts, project_id: str, generation: int) -> None:
        super().__init__(name=f"segmap-archive-{project_id}", daemon=True)
        self.parts = parts
        self.project_id = project_id
        self.generation = generation
        self._halt = threading.Event()
        self._poll = DicomwebPoll(parts.timing.sweep_s, parts.timing.overlap_days)

    def stop(self) -> None:
        """Ask the thread to end after what it is doing."""
        self._halt.set()

    @property
    def stopping(self) -> bool:
        """Whether it was asked to end (an import it runs goes back to the queue)."""
        return self._halt.is_set()

    def run(self) -> None:
        try:
            self._follow_until_stopped()
        finally:
            try:
                follow_lease.let_go(self.parts.database, self.parts.lease.token, self.project_id)
            except Exception:  # the lease then runs out by itself
                log.exception("archive %s: letting go of following failed", self.project_id)

    def _follow_until_stopped(self) -> None:
        timing = self.parts.timing
        backoff = timing.backoff_min_s
        while not self._halt.is_set():
            try:
                row = self._row()
                if row is None:
                    return
                more = self._round(row)
            except ArchiveError as exc:
                self._note(error=str(exc))
                log.warning("archive %s: %s (trying again in %g s)", self.project_id, exc, backoff)
                self._halt.wait(backoff)
                backoff = min(backoff * 2, timing.backoff_max_s)
                continue
            except Exception as exc:  # never let one round end the follower
                log.exception("archive %s: follower round failed", self.project_id)
                self._note(error=f"internal error ({type(exc).__name__}); see the service log")
                self._halt.wait(backoff)
                backoff = min(backoff * 2, timing.backoff_max_s)
                continue
            backoff = timing.backoff_min_s
            if not more:
                wait = timing.poll_s if row.kind == "orthanc" else timing.dicomweb_poll_s
                self._halt.wait(wait)

    def _row(self) -> ArchiveConnection | None:
        with self.parts.database.session() as db:
            row = db.get(ArchiveConnection, self.project_id)
            if row is None or row.generation != self.generation:
                return None
            db.expunge(row)
            return row

    def _round(self, row: ArchiveConnection) -> bool:
        """Imports by hand, then (if this service follows the archive) one step of
        following and the pushes; whether more changes wait."""
        target, client = open_connection(self.parts, row)
        database, lease = self.parts.database, self.parts.lease
        try:
            manual.run_queued(target, client, self._halt, lease)
            if not follow_lease.hold(database, lease, self.project_id, self.generation):
                return False  # another service follows this archive
            renewer = follow_lease.renewer(database, lease, self.project_id, self.generation)
            try:
                more = self._follow(target, client, row, renewer)
            finally:
                renewer.stop()
        finally:
            client.close()
        self._note()
        return more

    def _follow(
        self, target: ImportTarget, client: ArchiveClient, row: ArchiveConnection, renewer: Renewer
    ) -> bool:
        if isinstance(client, OrthancClient):
            step = orthanc_step(target, client, row.cursor, self._save_cursor)
        else:
            assert isinstance(client, DicomwebClient)
            step = dicomweb_step(
                target, client, row.cursor, self._poll, time.monotonic(), self._save_cursor
            )
        if row.push_masks:
            for item in pending_pushes(self.parts.database, self.project_id):
                if renewer.lost.is_set():
                    break  # another service follows now, and pushes
                push_one(self.parts.database, self.parts.storage, client, self.project_id, item)
        return step.more

    def _save_cursor(self, cursor: str) -> None:
        # Only while following: a follower that stalled past its lease and lost the
        # connection to another service must not move that one's cursor back.
        self._update(cursor=cursor, following=True)

    def _note(self, error: str | None = None) -> None:
        if error is None:
            self._update(last_contact_at=utcnow(), last_error=None)
        else:
            self._update(last_error=error[:2000], last_error_at=utcnow())

    def _update(self, *, following: bool = False, **values: Any) -> None:
        with self.parts.database.session(write=True) as db:
            row = db.get(ArchiveConnection, self.project_id, with_for_update=True)
            if row is None or row.generation != self.generation:
                return  # changed meanwhile: the new follower keeps its own state
            if following and row.follower != self.parts.lease.token:
                return
            for key, value in values.items():
                setattr(row, key, value)
            db.commit()
