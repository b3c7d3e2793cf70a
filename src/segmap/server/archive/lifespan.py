"""The followers run with the service: one per connected project, started and stopped
with its connection.

:class:`Followers` is a thread that looks at the connections every ``watch_s``: a new
connection (or a changed one: its ``generation`` went up) gets a new
:class:`~.follower.Follower`; a follower whose connection is gone or changed ends by
itself. :func:`followers_lifespan` starts it with the app and stops every follower with
it. The followers of one service hold imports by hand and the connections they follow
with one lease (``Settings.job_lease_s`` long, as for jobs): an import a stopping
service was running goes back to the queue and its connections are let go, what a
service that died held is taken over when its lease expires, and a service starting
leaves alone what the others run.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from segmap.server.archive.follower import Follower, FollowerTiming, ServiceParts
from segmap.server.archive.secrets import secret_box
from segmap.server.db.archive import ArchiveConnection
from segmap.server.db.leases import Lease, holder_token


class Followers(threading.Thread):
    """Keeps one follower running per connection (see module doc)."""

    def __init__(self, parts: ServiceParts) -> None:
        super().__init__(name="segmap-archive-followers", daemon=True)
        self.parts = parts
        self.running: dict[str, Follower] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.refresh()
            self._halt.wait(self.parts.timing.watch_s)

    def refresh(self) -> None:
        """Start followers for new or changed connections; forget ended ones."""
        with self.parts.database.session() as db:
            wanted = dict(
                db.execute(select(ArchiveConnection.project_id, ArchiveConnection.generation)).all()
            )
        for project_id, follower in list(self.running.items()):
            if wanted.get(project_id) != follower.generation or not follower.is_alive():
                follower.stop()  # it ends after its current step, writing nothing more
                del self.running[project_id]
        for project_id, generation in wanted.items():
            if project_id not in self.running and not self._halt.is_set():
                follower = Follower(self.parts, project_id, generation)
                follower.start()
                self.running[project_id] = follower

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop watching and stop every follower (each ends after its current step)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout_s)
        for follower in self.running.values():
            follower.stop()
        for follower in self.running.values():
            follower.join(timeout_s)


@asynccontextmanager
async def followers_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the followers while the app runs (``app.state.archive_timing`` if set)."""
    settings = app.state.settings
    timing = getattr(app.state, "archive_timing", None) or FollowerTiming()
    parts = ServiceParts(
        database=app.state.database,
        storage=app.state.storage,
        events=app.state.imaging_events,
        box=secret_box(settings.data_dir),
        max_file_bytes=settings.max_upload_bytes,
        timing=timing,
        lease=Lease(holder_token(), settings.job_lease_s),
    )
    followers = Followers(parts)
    followers.start()
    app.state.archive_followers = followers
    try:
        yield
    finally:
        await run_in_threadpool(followers.stop)
        app.state.archive_followers = None
