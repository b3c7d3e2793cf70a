"""Imports by hand are leased: of several services on one database, one runs each.

First the claim itself, on SQLite and PostgreSQL: a live lease is kept, an expired one
is taken over, a project's follower claims only that project's imports, an import whose
services kept dying fails, and runners claiming at once never share an import.

Then two real app instances on one PostgreSQL database, each with its followers, and a
real Orthanc. The Orthanc client is the real one with a gate in ``study_series`` (the
first step of an import: listing the study's series): the gate holds an import in the
middle, records every start, and lets the test start the second service meanwhile. The
second service must leave the first one's import alone (the start-up re-queueing this
replaced did not) while the first renews its lease, then they share the queue, and each
import is started exactly once. Last, a service stopping puts its import back in the
queue for the next one, which finishes it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient

from archive_helpers import archive_state, collections, connect, fast_app, orthanc_server, wait_for
from jobs_helpers import small_case
from segmap.server.archive import follower, manual
from segmap.server.archive.clients import TIMEOUT_S, OrthancClient, SeriesRef
from segmap.server.archive.import_leases import MAX_ATTEMPTS, change, claim, finish
from segmap.server.db.archive import (
    IMPORT_FAILED,
    IMPORT_QUEUED,
    IMPORT_RUNNING,
    IMPORT_SUCCEEDED,
    ArchiveConnection,
    ArchiveImport,
)
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.leases import Lease
from segmap.server.db.registry import Project
from segmap.server.settings import Settings
from segmap.testing.orthanc import OrthancServer
from server_fixtures import Api, World
from test_archive_orthanc import fast_app_started

LEASE_S = 2.0
NOTHING_PASSES = {"StudyDescription": "NO SUCH STUDY"}  # the follower imports nothing itself

# ---------------------------------------------------------------- the claim itself


def _database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    return database


def _queue(database: Database, project_id: str, count: int) -> list[int]:
    """``count`` queued imports of project ``project_id`` (made with it and its connection)."""
    with database.session(write=True) as db:
        if db.get(Project, project_id) is None:
            db.add(Project(id=project_id, id_key=project_id.lower(), name=project_id))
            db.flush()
            db.add(ArchiveConnection(project_id=project_id, kind="orthanc", url="http://x"))
        rows = [
            ArchiveImport(project_id=project_id, studies=[f"1.2.3.{n}"], series=[])
            for n in range(count)
        ]
        db.add_all(rows)
        db.commit()
        return [r.id for r in rows]


def _row(database: Database, import_id: int) -> ArchiveImport:
    with database.session() as db:
        row = db.get(ArchiveImport, import_id)
        assert row is not None
        db.expunge(row)
        return row


def _expire(database: Database, import_id: int) -> None:
    """The holder's lease runs out (its service died)."""
    with database.session(write=True) as db:
        row = db.get(ArchiveImport, import_id)
        assert row is not None
        row.lease_expires_at = utcnow() - timedelta(seconds=1)
        db.commit()


def test_a_live_lease_is_kept_an_expired_one_is_taken_over(settings: Settings) -> None:
    database = _database(settings)
    [import_id] = _queue(database, "L", 1)
    [other] = _queue(database, "M", 1)
    first, second = Lease("first", 60.0), Lease("second", 60.0)
    assert claim(database, first, "L") == import_id
    assert claim(database, second, "L") is None  # the lease is live
    row = _row(database, import_id)
    assert (row.state, row.runner, row.attempts) == (IMPORT_RUNNING, "first", 1)
    assert row.lease_expires_at is not None and row.lease_expires_at > utcnow()

    # The first service dies: the second takes it over; the first, back, owns nothing.
    _expire(database, import_id)
    assert claim(database, second, "L") == import_id
    assert not change(database, import_id, "first", stage="mine")
    assert not finish(database, import_id, "first", state=IMPORT_SUCCEEDED)
    row = _row(database, import_id)
    assert (row.state, row.runner, row.attempts, row.stage) == (
        IMPORT_RUNNING,
        "second",
        2,
        "starting",
    )
    assert finish(database, import_id, "second", state=IMPORT_SUCCEEDED, stage="done")
    row = _row(database, import_id)
    assert (row.state, row.runner, row.lease_expires_at) == (IMPORT_SUCCEEDED, None, None)
    assert row.finished_at is not None
    # Project M's import waits for M's follower.
    assert _row(database, other).state == IMPORT_QUEUED
    assert claim(database, first, "L") is None
    assert claim(database, first, "M") == other
    database.dispose()


def test_an_import_whose_services_kept_dying_fails(settings: Settings) -> None:
    database = _database(settings)
    [import_id] = _queue(database, "L", 1)
    for n in range(MAX_ATTEMPTS):
        assert claim(database, Lease(f"service-{n}", 60.0), "L") == import_id
        _expire(database, import_id)
    assert claim(database, Lease("last", 60.0), "L") is None
    row = _row(database, import_id)
    assert row.state == IMPORT_FAILED and row.runner is None
    assert row.error is not None and f"stopped {MAX_ATTEMPTS} times" in row.error
    database.dispose()


def test_the_command_lines_import_is_held_until_its_lease_runs_out(settings: Settings) -> None:
    database = _database(settings)
    _queue(database, "L", 0)
    before = utcnow()
    with database.session(write=True) as db:  # the command's lease: SEGMAP_JOB_LEASE_S long
        import_id = manual.start_import(db, "L", ["1.2.3.4"], [], lease=Lease("command", 600.0))
    row = _row(database, import_id)
    assert row.state == IMPORT_RUNNING and row.runner == "command" and row.attempts == 1
    assert row.lease_expires_at is not None
    assert timedelta(seconds=599) < row.lease_expires_at - before < timedelta(seconds=610)
    assert claim(database, Lease("service", 60.0), "L") is None  # a follower leaves it
    _expire(database, import_id)  # the command was killed
    assert claim(database, Lease("service", 60.0), "L") == import_id
    assert _row(database, import_id).attempts == 2
    database.dispose()


def test_services_claiming_at_once_never_share_an_import(settings: Settings) -> None:
    database = _database(settings)
    ids = _queue(database, "L", 40)
    database.dispose()
    services = [Database(settings.effective_database_url) for _ in range(4)]
    won: dict[int, list[int]] = {n: [] for n in range(len(services))}
    start = threading.Barrier(len(services))

    def claim_all(n: int) -> None:
        lease = Lease(f"service-{n}", 60.0)
        start.wait()
        while (found := claim(services[n], lease, "L")) is not None:
            won[n].append(found)

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(len(services))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(i for found in won.values() for i in found) == sorted(ids)
    owner = {i: f"service-{n}" for n, found in won.items() for i in found}
    with services[0].session() as db:
        rows = db.query(ArchiveImport.id, ArchiveImport.runner, ArchiveImport.attempts).all()
    assert {(i, r, a) for i, r, a in rows} == {(i, owner[i], 1) for i in ids}
    for database in services:
        database.dispose()


# ---------------------------------------------------------------- two real services


class Gate:
    """Holds every import at its first step until opened; records each start."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self._lock = threading.Lock()
        self._starts: list[str] = []

    def starts(self) -> list[str]:
        """The StudyInstanceUIDs imports were started for, in order."""
        with self._lock:
            return list(self._starts)

    def enter(self, study_uid: str) -> None:
        """Record a start and wait for the gate."""
        with self._lock:
            self._starts.append(study_uid)
        assert self.opened.wait(120), "the test never opened the gate"

    def client_for(self) -> Callable[..., OrthancClient]:
        """``clients.client_for`` giving real Orthanc clients that pass this gate."""
        gate = self

        class GatedOrthanc(OrthancClient):
            def study_series(self, study_uid: str) -> list[SeriesRef]:
                gate.enter(study_uid)
                return super().study_series(study_uid)

        def make(
            kind: str, url: str, username: str, password: str, timeout_s: float = TIMEOUT_S
        ) -> OrthancClient:
            assert kind == "orthanc"
            return GatedOrthanc(url, username, password, timeout_s)

        return make


@pytest.fixture()
def settings(settings: Settings) -> Settings:
    """Short leases, so holding one across several of them needs the renewals."""
    return replace(settings, job_lease_s=LEASE_S)


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    yield from fast_app(settings)


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path)


@pytest.fixture()
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    found = Gate()
    monkeypatch.setattr(follower, "client_for", found.client_for())
    yield found
    found.opened.set()  # never leave a follower waiting at the end


@pytest.fixture()
def services() -> Iterator[list[TestClient]]:
    """More services started by the test on the same database; stopped at the end."""
    started: list[TestClient] = []
    yield started
    for client in started:
        client.__exit__(None, None, None)
        client.app.state.database.dispose()


def _studies(orthanc: OrthancServer, tmp_path: Path, count: int) -> list[str]:
    """``count`` small CT + RTSTRUCT studies stored in Orthanc; their StudyInstanceUIDs."""
    uids = []
    for n in range(count):
        case = small_case(tmp_path / f"case{n}", 90 + n)
        orthanc.store_files([*case.series.files, case.rtstruct_path])
        uids.append(pydicom.dcmread(case.rtstruct_path, stop_before_pixels=True).StudyInstanceUID)
    return uids


def _queue_by_api(world: World, study: str) -> int:
    r = world.client.post(
        f"{world.project_url}/archive/import", json={"studies": [study]}, headers=world.h("owner")
    )
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def _token(client: Any) -> str:
    """The lease token of a service's followers."""
    return str(client.app.state.archive_followers.parts.lease.token)


def _contact(world: World) -> datetime | None:
    found = archive_state(world)["last_contact_at"]
    return datetime.fromisoformat(found) if found else None


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_services_on_one_database_start_each_import_once(
    world: World,
    orthanc: OrthancServer,
    gate: Gate,
    services: list[TestClient],
    settings: Settings,
    tmp_path: Path,
) -> None:
    database = world.api.app.state.database
    first, second, third = _studies(orthanc, tmp_path, 3)
    connect(world, {"kind": "orthanc", "url": orthanc.url, "filter": NOTHING_PASSES})
    wait_for("the follower skipping all three", lambda: len(archive_state(world)["recent"]) == 3)

    # Service A starts the first import and is held in it.
    a_id = _queue_by_api(world, first)
    wait_for("service A in the import", lambda: gate.starts() == [first])
    held = _row(database, a_id)
    assert (held.state, held.runner, held.attempts) == (IMPORT_RUNNING, _token(world.client), 1)
    assert held.lease_expires_at is not None
    first_expiry = held.lease_expires_at

    # Service B starts on the same database and follows (A's follower is held, so each
    # contact is B's); two rounds of B after A's first lease would have run out: A renewed
    # it, and B did not take the import.
    b = fast_app_started(settings)
    services.append(b)
    b_world = World(api=Api(b, b.app), headers=world.headers, model_id=world.model_id)
    once = wait_for("B's round", lambda: (c := _contact(b_world)) and c > first_expiry and c)
    wait_for("B's next round", lambda: (c := _contact(b_world)) and c > once)
    held = _row(database, a_id)
    assert (held.state, held.runner, held.attempts) == (IMPORT_RUNNING, _token(world.client), 1)
    assert held.lease_expires_at is not None and held.lease_expires_at > first_expiry
    assert gate.starts() == [first]

    # Two more imports, asked through B: B's follower takes the next (A's is held).
    b_id = _queue_by_api(b_world, second)
    wait_for("service B in the second import", lambda: gate.starts() == [first, second])
    assert _row(database, b_id).runner == _token(b)
    c_id = _queue_by_api(world, third)
    assert _row(database, c_id).state == IMPORT_QUEUED  # both followers are busy

    # Open: each import finishes, started once, by one service.
    gate.opened.set()

    def done() -> bool:
        rows = [_row(database, i) for i in (a_id, b_id, c_id)]
        return all(r.state in (IMPORT_SUCCEEDED, IMPORT_FAILED) for r in rows)

    wait_for("the three imports", done)
    rows = [_row(database, i) for i in (a_id, b_id, c_id)]
    assert [(r.state, r.attempts, r.runner) for r in rows] == [(IMPORT_SUCCEEDED, 1, None)] * 3
    assert all(r.imported == 2 for r in rows), [r.stage for r in rows]  # CT + RTSTRUCT
    assert Counter(gate.starts()) == {first: 1, second: 1, third: 1}
    assert sorted(c["type"] for c in collections(world)) == ["RTSTRUCT"] * 3


def test_a_stopping_service_puts_its_import_back_for_the_next(
    world: World,
    orthanc: OrthancServer,
    gate: Gate,
    services: list[TestClient],
    settings: Settings,
    tmp_path: Path,
) -> None:
    database = world.api.app.state.database
    (study,) = _studies(orthanc, tmp_path, 1)
    connect(world, {"kind": "orthanc", "url": orthanc.url, "filter": NOTHING_PASSES})
    import_id = _queue_by_api(world, study)
    wait_for("the import started", lambda: gate.starts() == [study])

    # The service stops while the import waits at the gate; once let through, the import
    # sees the stop at its next step and goes back to the queue, nothing imported.
    stopping = threading.Thread(target=world.client.__exit__, args=(None, None, None))
    stopping.start()
    followers = world.api.app.state.archive_followers
    wait_for("the follower told to stop", lambda: followers.running["P"].stopping)
    gate.opened.set()
    stopping.join(timeout=60)
    assert not stopping.is_alive()
    row = _row(database, import_id)
    assert (row.state, row.runner, row.lease_expires_at) == (IMPORT_QUEUED, None, None)
    assert row.stage == "queued again: the service stopped while it ran"

    # The next service takes it at once (no lease to wait for) and finishes it.
    again = fast_app_started(settings)
    services.append(again)
    later = World(api=Api(again, again.app), headers=world.headers, model_id=world.model_id)
    wait_for("the import done", lambda: _row(database, import_id).state == IMPORT_SUCCEEDED)
    row = _row(database, import_id)
    assert row.attempts == 2 and row.imported == 2 and row.runner is None
    assert gate.starts() == [study, study]
    assert [c["type"] for c in collections(later)] == ["RTSTRUCT"]
