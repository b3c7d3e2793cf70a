"""Of several services on one database, one follows each project's archive.

First the hold itself, on SQLite and PostgreSQL: a live hold is kept, a lapsed one is
taken over, letting go frees it, a connection saved again is a new one, a follower that
lost its hold writes no cursor, and of services taking at once one wins.

Then two real app instances on one PostgreSQL database and a real Orthanc, each running
its followers. The follow steps are the real ones, recorded as they run: while both
services run, one of them reads the changes and imports, the other only looks; when
that one stops, it lets go and the other follows from where it left, and every series
is imported once (one ROI collection each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient

from archive_helpers import archive_state, collections, connect, fast_app, orthanc_server, wait_for
from jobs_helpers import small_case
from segmap.server.archive import follow_lease, follower
from segmap.server.archive.follower import Follower, FollowerTiming, ServiceParts
from segmap.server.archive.secrets import secret_box
from segmap.server.db.archive import ArchiveConnection
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.leases import Lease
from segmap.server.db.registry import Project
from segmap.server.imaging.events import ImagingEvents
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage
from segmap.testing.orthanc import OrthancServer
from server_fixtures import Api, World
from test_archive_orthanc import fast_app_started

LEASE_S = 2.0

# ---------------------------------------------------------------- the hold itself


def _database(settings: Settings) -> Database:
    """A migrated database with project L and its connection (generation 1)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    with database.session(write=True) as db:
        db.add(Project(id="L", id_key="l", name="L"))
        db.flush()
        db.add(ArchiveConnection(project_id="L", kind="orthanc", url="http://x", generation=1))
        db.commit()
    return database


def _connection(database: Database) -> ArchiveConnection:
    with database.session() as db:
        row = db.get(ArchiveConnection, "L")
        assert row is not None
        db.expunge(row)
        return row


def _lapse(database: Database) -> None:
    """The holder's lease runs out (its service died)."""
    with database.session(write=True) as db:
        row = db.get(ArchiveConnection, "L")
        assert row is not None
        row.follower_lease_expires_at = utcnow() - timedelta(seconds=1)
        db.commit()


def test_a_live_hold_is_kept_a_lapsed_one_taken_over_a_freed_one_taken(
    settings: Settings,
) -> None:
    database = _database(settings)
    a, b = Lease("service-a", 60.0), Lease("service-b", 60.0)
    before = utcnow()
    assert follow_lease.hold(database, a, "L", 1)
    assert not follow_lease.hold(database, b, "L", 1)  # A's hold is live
    row = _connection(database)
    assert row.follower == "service-a" and row.follower_lease_expires_at is not None
    assert timedelta(seconds=59) < row.follower_lease_expires_at - before < timedelta(seconds=70)
    first_expiry = row.follower_lease_expires_at
    assert follow_lease.hold(database, a, "L", 1)  # renewed
    renewed = _connection(database).follower_lease_expires_at
    assert renewed is not None and renewed >= first_expiry

    # A's service dies: once its lease ran out, B takes over and A, back, holds nothing.
    _lapse(database)
    assert follow_lease.hold(database, b, "L", 1)
    assert not follow_lease.hold(database, a, "L", 1)
    follow_lease.let_go(database, a.token, "L")  # not A's to give
    assert _connection(database).follower == "service-b"

    # B's service stops and lets go: A takes it at once, without waiting for a lease.
    follow_lease.let_go(database, b.token, "L")
    row = _connection(database)
    assert (row.follower, row.follower_lease_expires_at) == (None, None)
    assert follow_lease.hold(database, a, "L", 1)
    # The connection saved again (generation 2) is not the one A's follower was for.
    assert not follow_lease.hold(database, a, "L", 2)
    assert not follow_lease.hold(database, a, "M", 1)  # no such connection
    database.dispose()


def test_a_follower_that_lost_its_hold_does_not_move_the_cursor(settings: Settings) -> None:
    database = _database(settings)
    parts = ServiceParts(
        database=database,
        storage=LocalStorage(settings.data_dir / "files"),
        events=ImagingEvents(),
        box=secret_box(settings.data_dir),
        max_file_bytes=1 << 20,
        timing=FollowerTiming(),
        lease=Lease("stalled", 60.0),
    )
    stalled = Follower(parts, "L", 1)  # not started: its steps are called here
    assert follow_lease.hold(database, parts.lease, "L", 1)
    stalled._save_cursor("10")
    assert _connection(database).cursor == "10"
    _lapse(database)
    assert follow_lease.hold(database, Lease("other", 60.0), "L", 1)  # took over meanwhile
    stalled._save_cursor("7")  # the stalled one's older step ends
    assert _connection(database).cursor == "10"
    database.dispose()


def test_of_services_taking_at_once_one_wins(settings: Settings) -> None:
    database = _database(settings)
    services = [Database(settings.effective_database_url) for _ in range(4)]
    leases = [Lease(f"service-{n}", 60.0) for n in range(len(services))]
    for _ in range(5):
        start = threading.Barrier(len(services))
        won: list[str] = []

        def take(n: int, start: threading.Barrier = start, won: list[str] = won) -> None:
            start.wait()
            if follow_lease.hold(services[n], leases[n], "L", 1):
                won.append(leases[n].token)

        threads = [threading.Thread(target=take, args=(n,)) for n in range(len(services))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(won) == 1, won
        assert _connection(database).follower == won[0]
        follow_lease.let_go(database, won[0], "L")
    for service in services:
        service.dispose()
    database.dispose()


# ---------------------------------------------------------------- two real services


class Steps:
    """Records which service's follower ran each follow step and each hold's answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.steps: list[str] = []
        self.holds: list[tuple[str, bool]] = []

    def runners(self) -> list[str]:
        with self._lock:
            return list(self.steps)

    def refused(self, token: str) -> int:
        """How many times ``token``'s follower was told another service follows."""
        with self._lock:
            return sum(1 for t, held in self.holds if t == token and not held)

    def step(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            thread = threading.current_thread()
            assert isinstance(thread, Follower)
            with self._lock:
                self.steps.append(thread.parts.lease.token)
            return real(*args, **kwargs)

        return recorded

    def hold(self, real: Callable[..., bool]) -> Callable[..., bool]:
        def recorded(database: Database, lease: Lease, *args: Any) -> bool:
            held = real(database, lease, *args)
            with self._lock:
                self.holds.append((lease.token, held))
            return held

        return recorded


@pytest.fixture()
def settings(settings: Settings) -> Settings:
    """Short leases, so a hold kept across several of them needs the renewals."""
    return replace(settings, job_lease_s=LEASE_S)


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    yield from fast_app(settings)


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path)


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> Steps:
    steps = Steps()
    monkeypatch.setattr(follower, "orthanc_step", steps.step(follower.orthanc_step))
    monkeypatch.setattr(follow_lease, "hold", steps.hold(follow_lease.hold))
    return steps


def _token(client: TestClient) -> str:
    """The lease token of a service's followers."""
    return str(client.app.state.archive_followers.parts.lease.token)  # type: ignore[attr-defined]


def _store_study(orthanc: OrthancServer, tmp_path: Path, seed: int) -> str:
    """A small CT and its RTSTRUCT stored in Orthanc; the RTSTRUCT's SeriesInstanceUID."""
    case = small_case(tmp_path / f"case{seed}", seed)
    orthanc.store_files([*case.series.files, case.rtstruct_path])
    return str(pydicom.dcmread(case.rtstruct_path, stop_before_pixels=True).SeriesInstanceUID)


def _imported(world: World) -> set[str]:
    """The series the connection's recent events say were imported."""
    events = archive_state(world)["recent"]
    return {e["series_instance_uid"] for e in events if e["event"] == "imported"}


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_of_two_services_one_follows_and_the_other_takes_over_when_it_stops(
    world: World,
    orthanc: OrthancServer,
    recorded: Steps,
    settings: Settings,
    tmp_path: Path,
) -> None:
    second = fast_app_started(settings)
    services = {_token(world.client): world.client, _token(second): second}
    try:
        connect(world, {"kind": "orthanc", "url": orthanc.url})
        first_rt = _store_study(orthanc, tmp_path, 61)
        wait_for("the first study imported", lambda: first_rt in _imported(world))
        (holder,) = set(recorded.runners())
        (other,) = set(services) - {holder}
        # The other service's follower looks round after round (past several of the
        # holder's leases, which the holder renews) and leaves following to the holder.
        wait_for("the other told ten times", lambda: recorded.refused(other) >= 10)
        assert set(recorded.runners()) == {holder}
        assert recorded.refused(holder) == 0

        # The holder's service stops: it lets go, and the other follows from its cursor.
        services[holder].__exit__(None, None, None)  # its followers end and let go
        steps_before = len(recorded.runners())  # a step it was in may have ended meanwhile
        remaining = services.pop(holder)
        remaining.app.state.database.dispose()  # type: ignore[attr-defined]
        left = World(
            api=Api(services[other], services[other].app),
            headers=world.headers,
            model_id=world.model_id,
        )
        second_rt = _store_study(orthanc, tmp_path, 62)
        wait_for("the second study imported", lambda: second_rt in _imported(left))
        assert set(recorded.runners()[steps_before:]) == {other}
        assert _imported(left) == {first_rt, second_rt}
        assert sorted(c["type"] for c in collections(left)) == ["RTSTRUCT", "RTSTRUCT"]
    finally:
        if second in services.values():
            second.__exit__(None, None, None)
            second.app.state.database.dispose()  # type: ignore[attr-defined]
