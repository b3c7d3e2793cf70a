"""Jobs claimed with a lease: no job runs twice, and a dead service's job is taken over.

First the claim itself, on SQLite and PostgreSQL, by several runners at once (each with
its own engine, as separate services have). Then two real ``segmap serve`` processes on
one PostgreSQL database and one data folder: many jobs, each run exactly once; and one
service killed with SIGKILL in the middle of a job, which the other takes over when the
lease expires and finishes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from jobs_helpers import (
    Service,
    assert_mask_matches_truth,
    create_user,
    free_port,
    small_case,
    truth_rois,
)
from segmap import testing as syn
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.imaging import ImagingSession, RoiCollection, Scan
from segmap.server.db.jobs import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, Job
from segmap.server.db.registry import MLModel, Project
from segmap.server.jobs import leases
from segmap.server.jobs.leases import Lease
from segmap.server.settings import Settings

PASSWORD = "lease-test-password"
LEASE_S = 3.0
# Job logs name a runner by its random label; site admins see its host and pid in the
# job's "runner" while it runs (olga, below, is one).
RUNNER_LINE = re.compile(r"attempt (\d+) by runner (\w+) on a")

# ---------------------------------------------------------------- the claim itself


def _database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    return database


def _queue_jobs(database: Database, count: int) -> list[int]:
    """``count`` queued jobs on one collection of one model (rows made directly)."""
    with database.session(write=True) as db:
        db.add(Project(id="L", id_key="l", name="Leases"))
        model = MLModel(
            project_id="L", label="m", label_key="m", spacing_x=1.0, spacing_y=1.0, spacing_z=1.0
        )
        session = ImagingSession(project_id="L", study_instance_uid="1.2.3", label="s")
        db.add_all([model, session])
        db.flush()
        scan = Scan(session_id=session.id, series_instance_uid="1.2.3.4")
        db.add(scan)
        db.flush()
        collection = RoiCollection(
            session_id=session.id,
            scan_id=scan.id,
            label="c",
            label_key="c",
            collection_type="RTSTRUCT",
            referenced_series_uid="1.2.3.4",
            size=1,
            sha256="0" * 64,
            storage_key="sessions/1/collections/x.dcm",
        )
        db.add(collection)
        db.flush()
        jobs = [
            Job(
                project_id="L",
                model_id=model.id,
                collection_id=collection.id,
                state=JOB_QUEUED,
                log="",
            )
            for _ in range(count)
        ]
        db.add_all(jobs)
        db.commit()
        return [j.id for j in jobs]


def test_runners_claiming_at_once_never_share_a_job(settings: Settings) -> None:
    database = _database(settings)
    ids = _queue_jobs(database, 60)
    database.dispose()
    runners = [Database(settings.effective_database_url) for _ in range(4)]
    won: dict[int, list[int]] = {n: [] for n in range(len(runners))}
    start = threading.Barrier(len(runners))

    def claim_all(n: int) -> None:
        lease = Lease(f"runner-{n}", 60.0)
        start.wait()
        while claimed := leases.claim(runners[n], lease, 3):
            won[n].extend(c.job_id for c in claimed)

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(len(runners))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    claimed = [job for jobs in won.values() for job in jobs]
    assert sorted(claimed) == sorted(ids), "every job claimed exactly once"
    with runners[0].session() as db:
        rows = db.execute(select(Job.id, Job.state, Job.runner, Job.attempts)).all()
    owner = {job: f"runner-{n}" for n, jobs in won.items() for job in jobs}
    assert {(i, s, r, a) for i, s, r, a in rows} == {(i, JOB_RUNNING, owner[i], 1) for i in ids}
    for database in runners:
        database.dispose()


def test_a_live_lease_is_kept_an_expired_one_is_taken_over(settings: Settings) -> None:
    database = _database(settings)
    [job_id] = _queue_jobs(database, 1)
    first, second = Lease("first", LEASE_S), Lease("second", LEASE_S)
    assert [c.attempt for c in leases.claim(database, first, 5)] == [1]
    assert leases.claim(database, second, 5) == []  # the lease is live
    assert leases.renew(database, first, {job_id}) == set()

    # The first runner's lease runs out (its service died): the second takes the job.
    with database.session(write=True) as db:
        db.get(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    assert [(c.job_id, c.attempt) for c in leases.claim(database, second, 5)] == [(job_id, 2)]
    with database.session() as db:
        job = db.get(Job, job_id)
        assert (job.runner, job.state) == ("second", JOB_RUNNING)
        assert "stopped while it ran; its lease ran out" in job.log
        assert job.lease_expires_at > utcnow() + timedelta(seconds=LEASE_S / 2)

    # The first runner, back from its stall, owns nothing: it cannot renew or finish.
    assert leases.renew(database, first, {job_id}) == {job_id}
    assert not leases.finish(database, job_id, first.token, JOB_SUCCEEDED)
    leases.update_running(
        database, job_id, first.token, stage="mine", progress=0.5, log_text="overwritten"
    )
    leases.release(database, job_id, first.token, "first gives it back")
    with database.session() as db:
        job = db.get(Job, job_id)
        assert (job.runner, job.state, job.stage) == ("second", JOB_RUNNING, "starting")
        assert "overwritten" not in job.log and "first gives it back" not in job.log
    assert leases.finish(database, job_id, second.token, JOB_SUCCEEDED)
    with database.session() as db:
        job = db.get(Job, job_id)
        assert (job.state, job.runner, job.lease_expires_at) == (JOB_SUCCEEDED, None, None)
    database.dispose()


def test_a_job_whose_services_kept_dying_fails_and_the_next_is_claimed(
    settings: Settings,
) -> None:
    database = _database(settings)
    doomed, fresh, later = _queue_jobs(database, 3)
    # The oldest job was started MAX_ATTEMPTS times and its last lease lapsed.
    with database.session(write=True) as db:
        job = db.get(Job, doomed)
        job.state, job.runner, job.attempts = JOB_RUNNING, "gone", leases.MAX_ATTEMPTS
        job.lease_expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    claimed = leases.claim(database, Lease("next", LEASE_S), 2)
    # Read two, the doomed one fails: only one is won, and the third stays queued.
    assert [(c.job_id, c.attempt) for c in claimed] == [(fresh, 1)]
    with database.session() as db:
        job = db.get(Job, doomed)
        assert (job.state, job.runner, job.lease_expires_at) == (JOB_FAILED, None, None)
        assert f"stopped {leases.MAX_ATTEMPTS} times while it ran" in job.error
        assert "failed: the service running this job stopped" in job.log
        assert db.get(Job, later).state == JOB_QUEUED
    database.dispose()


# ---------------------------------------------------------------- two real services


@pytest.fixture()
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for s in services:
        s.stop()


def _client(service: Service) -> httpx.Client:
    token = httpx.post(
        service.url + "/api/v1/auth/token", json={"username": "olga", "password": PASSWORD}
    ).json()["token"]
    return httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def _service_env(tmp_path: Path, pg_server: Any, stage_delay_s: float) -> dict[str, str]:
    """The environment of services on one new PostgreSQL database (with user olga)."""
    url = pg_server.fresh_database()
    create_user(tmp_path / "data", "olga", PASSWORD, database_url=url, admin=True)
    return {
        "SEGMAP_DATABASE_URL": url,
        "SEGMAP_JOB_LEASE_S": str(LEASE_S),
        "SEGMAP_JOB_STAGE_DELAY_S": str(stage_delay_s),
    }


def _project_with_case(
    client: httpx.Client, case: syn.SyntheticCase, models: list[str], labels: list[str]
) -> None:
    """Project R with ``models`` (maps, no automation) and the case's RTSTRUCT as ``labels``."""
    assert client.post("/api/v1/projects", json={"id": "R", "name": "Leases"}).status_code == 201
    map_text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items()).encode()
    for model in models:
        r = client.post(
            "/api/v1/projects/R/models", json={"label": model, "voxel_spacing": [2, 2, 4]}
        )
        assert r.status_code == 201, r.text
        r = client.put(
            f"/api/v1/projects/R/models/{model}/resources/maps/files/region2MaskValueMap.txt",
            content=map_text,
        )
        assert r.status_code == 201, r.text
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = client.post("/api/v1/projects/R/sessions", files=files)
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]["id"]
    for label in labels:
        r = client.put(
            f"/api/v1/projects/R/sessions/{session}/collections/{label}",
            content=case.rtstruct_path.read_bytes(),
            params={"type": "RTSTRUCT"},
        )
        assert r.status_code == 201, r.text


def _jobs(client: httpx.Client) -> list[dict[str, Any]]:
    r = client.get("/api/v1/projects/R/jobs")
    assert r.status_code == 200, r.text
    jobs: list[dict[str, Any]] = r.json()
    return jobs


def _job(client: httpx.Client, job_id: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def _wait_all_done(client: httpx.Client, count: int, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = _jobs(client)
        if len(jobs) == count and all(j["state"] in ("succeeded", "failed") for j in jobs):
            return jobs
        assert time.monotonic() < deadline, f"jobs did not finish: {jobs}"
        time.sleep(0.3)


def _runs(log: str) -> list[tuple[int, str]]:
    """(attempt, runner label) of every run a job's log records."""
    return [(int(a), label) for a, label in RUNNER_LINE.findall(log)]


@pytest.mark.postgres
def test_two_services_on_one_database_run_each_job_exactly_once(
    tmp_path: Path, pg_server: Any, started: list[Service]
) -> None:
    """The second service starts while the first runs jobs: it must neither re-run nor
    disturb them (a start-up that re-queued every running job would, and wiping the
    shared work folder would break them), and then it shares the rest of the queue."""
    data = tmp_path / "data"
    env = _service_env(tmp_path, pg_server, stage_delay_s=0.2)
    started.append(Service(data, free_port(), env))
    client = _client(started[0])
    case = small_case(tmp_path / "case", 41)
    models, labels = ["m1", "m2", "m3"], ["a", "b", "c", "d"]
    _project_with_case(client, case, models, labels)
    for model in models:  # 12 jobs
        r = client.post(f"/api/v1/projects/R/models/{model}/convert", json={})
        assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while not any(j["state"] == "running" for j in _jobs(client)):
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.1)
    started.append(Service(data, free_port(), env))
    services = started
    jobs = _wait_all_done(client, len(models) * len(labels), timeout_s=300)

    ran_on: set[str] = set()  # runner labels: one runner per service
    for listed in jobs:
        job = _job(client, listed["id"])
        assert job["state"] == "succeeded", job
        assert job["attempts"] == 1, job
        runs = _runs(job["log"])
        assert len(runs) == 1 and runs[0][0] == 1, job["log"]
        assert job["log"].count("worker converting job ") == 1, job["log"]
        ran_on.add(runs[0][1])
    assert len(ran_on) == len(services), "both services should have run some of the jobs"
    for s in services:
        assert s.process.poll() is None
    assert [p for p in (data / "jobs").rglob("*") if p.is_file()] == []


@pytest.mark.postgres
def test_a_job_of_a_killed_service_is_finished_by_the_other_after_its_lease(
    tmp_path: Path, pg_server: Any, started: list[Service]
) -> None:
    data = tmp_path / "data"
    env = _service_env(tmp_path, pg_server, stage_delay_s=1.0)
    services = [Service(data, free_port(), env) for _ in range(2)]
    started.extend(services)
    client = _client(services[0])
    case = small_case(tmp_path / "case", 42, size=(64, 56, 12))
    _project_with_case(client, case, ["organs"], ["rois"])
    r = client.post("/api/v1/projects/R/models/organs/convert", json={})
    assert r.status_code == 202, r.text
    job_id = r.json()["jobs"][0]["id"]

    deadline = time.monotonic() + 120
    while (job := _job(client, job_id))["stage"] != "placing regions":
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"the job never got going: {job}"
        time.sleep(0.1)
    [(_, owner_label)] = _runs(job["log"])
    _host, owner_pid, label = job["runner"].split(":")
    assert label == owner_label
    victim = next(s for s in services if s.process.pid == int(owner_pid))
    survivor = next(s for s in services if s is not victim)
    lease_seen = datetime.fromisoformat(job["lease_expires_at"])
    victim.kill()

    client = _client(survivor)
    deadline = time.monotonic() + 180
    while (job := _job(client, job_id))["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"the job was not taken over: {job}"
        time.sleep(0.3)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    runs = [label for _, label in _runs(job["log"])]
    assert len(runs) == 2 and runs[0] == owner_label and runs[1] != owner_label, job["log"]
    assert survivor.process.poll() is None
    assert "stopped while it ran; its lease ran out" in job["log"]
    # Not taken over before the lease the killed service had last renewed ran out.
    assert datetime.fromisoformat(job["started_at"]) >= lease_seen
    mask = client.get(f"{job['resources_url']}/organs/files/mask.nii.gz")
    assert mask.status_code == 200
    assert_mask_matches_truth(mask.content, case.series.folder, truth_rois(case), tmp_path)
    assert [p for p in (data / "jobs").rglob("*") if p.is_file()] == []
