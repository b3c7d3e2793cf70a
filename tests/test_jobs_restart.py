"""A real ``segmap serve`` process killed with SIGKILL in the middle of a job.

The job is slowed down with the runner's test hook ``SEGMAP_JOB_STAGE_DELAY_S`` (the
worker sleeps after each progress report), so the kill lands while the worker is
writing outputs. After a restart on the same data folder the job runs again once the
killed service's lease on it has expired (``SEGMAP_JOB_LEASE_S``, short here) and
succeeds; its folder holds exactly the five outputs, whole (sizes and SHA-256 match,
the mask is right voxel for voxel), and nothing half-written is left anywhere in the
data folder. The killed service's worker process dies with it.

Also: a worker process killed on its own (as the out-of-memory killer would) breaks the
local pool; the service stays up, starts a fresh pool and runs the job again.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs_helpers import (
    Service,
    assert_mask_matches_truth,
    create_user,
    free_port,
    small_case,
    truth_rois,
)
from segmap import testing as syn

OUTPUTS = {
    "mask.nii.gz",
    "image_resampled.nii.gz",
    "mask_resampled.nii.gz",
    "report.json",
    "preview.png",
    "seg.dcm",  # the mask as a DICOM SEG, also a series of the study (DICOMweb, OHIF)
}
PASSWORD = "restart-test-password"
LEASE = {"SEGMAP_JOB_LEASE_S": "3"}


@pytest.fixture()
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        s.stop()


def _worker_pid(data: Path, job: dict[str, Any]) -> int:
    """The pid of the worker running the job's current attempt, from its work folder
    (the service's own files: job logs that users read name no process ids)."""
    progress = data / "jobs" / f"job-{job['id']}-attempt-{job['attempts']}" / "progress.json"
    return int(json.loads(progress.read_text(encoding="utf-8"))["worker_pid"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def _job(client: httpx.Client, job_id: int) -> dict[str, Any]:
    r = client.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _client(service: Service) -> httpx.Client:
    token = httpx.post(
        service.url + "/api/v1/auth/token", json={"username": "olga", "password": PASSWORD}
    ).json()["token"]
    return httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def _queue_a_job(client: httpx.Client, case: syn.SyntheticCase) -> tuple[int, str]:
    """Project R, an automated model with a map, the case's session and RTSTRUCT uploaded.

    Returns the job's id and the URL of the scan's derived resources.
    """
    assert client.post("/api/v1/projects", json={"id": "R", "name": "Restart"}).status_code == 201
    r = client.post(
        "/api/v1/projects/R/models",
        json={"label": "organs-2mm", "voxel_spacing": [2, 2, 4], "automation": True},
    )
    assert r.status_code == 201, r.text
    map_text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items())
    r = client.put(
        "/api/v1/projects/R/models/organs-2mm/resources/maps/files/region2MaskValueMap.txt",
        content=map_text.encode(),
    )
    assert r.status_code == 201, r.text
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = client.post("/api/v1/projects/R/sessions", files=files)
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]["id"]
    r = client.put(
        f"/api/v1/projects/R/sessions/{session}/collections/rois",
        content=case.rtstruct_path.read_bytes(),
        params={"type": "RTSTRUCT"},
    )
    assert r.status_code == 201, r.text
    scan = r.json()["scan"]["id"]
    jobs = client.get("/api/v1/projects/R/jobs").json()
    assert len(jobs) == 1
    return jobs[0]["id"], f"/api/v1/projects/R/sessions/{session}/scans/{scan}/resources"


def _wait_for_stage(client: httpx.Client, job_id: int, stage: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job = _job(client, job_id)
        if job["state"] == "running" and job["stage"] == stage:
            return job
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"job never reached {stage!r}: {job}"
        time.sleep(0.1)


def _wait_until_done(client: httpx.Client, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while (job := _job(client, job_id))["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"the job did not finish: {job}"
        time.sleep(0.3)
    return job


def test_killed_service_finishes_the_job_after_restart(tmp_path: Path, services) -> None:
    data = tmp_path / "data"
    create_user(data, "olga", PASSWORD)
    case = small_case(tmp_path / "case", 31, size=(64, 56, 12))
    first = Service(data, free_port(), {**LEASE, "SEGMAP_JOB_STAGE_DELAY_S": "2.0"})
    services.append(first)
    client = _client(first)
    job_id, resources = _queue_a_job(client, case)
    # Wait until the worker is writing the outputs (the stage after "writing outputs").
    job = _wait_for_stage(client, job_id, "writing image")
    worker_pid = _worker_pid(data, job)
    deadline = time.monotonic() + 1.5  # the mask is gzipped on a writer thread
    while not list((data / "jobs").rglob("mask.nii.gz")):
        assert time.monotonic() < deadline, "the mask should be staged in the work folder"
        time.sleep(0.05)
    assert _job(client, job_id)["state"] == "running"
    assert client.get(resources).json() == []

    first.kill()
    deadline = time.monotonic() + 15
    while _pid_alive(worker_pid):
        assert time.monotonic() < deadline, "the worker outlived the killed service"
        time.sleep(0.1)

    second = Service(data, free_port(), LEASE)
    services.append(second)
    client = _client(second)
    job = _wait_until_done(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    assert "stopped while it ran; its lease ran out" in job["log"]

    folders = client.get(resources).json()
    assert [f["label"] for f in folders] == ["organs-2mm"]
    listed = {f["name"]: f for f in folders[0]["files"]}
    assert set(listed) == OUTPUTS
    for name, meta in listed.items():
        body = client.get(f"{resources}/organs-2mm/files/{name}").content
        assert len(body) == meta["size"] and hashlib.sha256(body).hexdigest() == meta["sha256"]
    mask = client.get(f"{resources}/organs-2mm/files/mask.nii.gz").content
    assert_mask_matches_truth(mask, case.series.folder, truth_rois(case), tmp_path)

    # Nothing half-written anywhere: no work files, no staged uploads, and the stored
    # derived objects are exactly the five listed.
    assert [p for p in (data / "jobs").rglob("*") if p.is_file()] == []
    assert [p for p in (data / "storage" / "staging").rglob("*") if p.is_file()] == []
    derived = [
        p
        for p in (data / "storage" / "objects" / "scans").rglob("*")
        if p.is_file() and "derived" in p.parts
    ]
    assert len(derived) == len(OUTPUTS)
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in derived} == {
        m["sha256"] for m in listed.values()
    }


def test_a_worker_killed_mid_job_is_replaced_and_the_job_runs_again(
    tmp_path: Path, services
) -> None:
    """The out-of-memory killer takes a worker: the service stays up and re-runs the job."""
    data = tmp_path / "data"
    create_user(data, "olga", PASSWORD)
    case = small_case(tmp_path / "case", 32, size=(64, 56, 12))
    service = Service(data, free_port(), {**LEASE, "SEGMAP_JOB_STAGE_DELAY_S": "1.0"})
    services.append(service)
    client = _client(service)
    job_id, resources = _queue_a_job(client, case)
    job = _wait_for_stage(client, job_id, "placing regions")
    worker_pid = _worker_pid(data, job)
    os.kill(worker_pid, signal.SIGKILL)
    job = _wait_until_done(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    assert "the worker process died" in job["log"]
    assert service.process.poll() is None
    assert job["log"].count("worker converting job") == 2, job["log"]
    mask = client.get(f"{resources}/organs-2mm/files/mask.nii.gz").content
    assert_mask_matches_truth(mask, case.series.folder, truth_rois(case), tmp_path)
