"""``segmap serve --demo``: the first start in an empty data folder shows the whole workflow.

A real service process: the demo account's password is printed and kept in the data
folder, the demo project holds a session with an RTSTRUCT and two automated models, and
both models' masks are made within a minute of starting. A second start keeps what is
there; a data folder with other accounts gets no demo.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobs_helpers import Service, create_user, free_port
from segmap.server.demo import CREDENTIALS_FILE, DEMO_MODELS, DEMO_PROJECT, DEMO_USER

OUTPUTS = {
    "mask.nii.gz",
    "image_resampled.nii.gz",
    "mask_resampled.nii.gz",
    "report.json",
    "preview.png",
    "seg.dcm",  # the mask as a DICOM SEG, also a series of the study (DICOMweb, OHIF)
}


@pytest.fixture()
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for s in services:
        s.stop()


def _client(service: Service, password: str) -> httpx.Client:
    r = httpx.post(
        f"{service.url}/api/v1/auth/token", json={"username": DEMO_USER, "password": password}
    )
    assert r.status_code == 200, r.text
    return httpx.Client(
        base_url=f"{service.url}/api/v1",
        timeout=30,
        headers={"Authorization": f"Bearer {r.json()['token']}"},
    )


def test_demo_has_masks_within_a_minute_and_is_made_once(tmp_path: Path, started) -> None:
    data = tmp_path / "data"
    t0 = time.monotonic()
    first = Service(data, free_port(), {}, ("--demo",))
    started.append(first)
    credentials = (data / CREDENTIALS_FILE).read_text()
    password = credentials.split("password: ")[1].strip()
    assert (data / CREDENTIALS_FILE).stat().st_mode & 0o077 == 0
    first.log.flush()
    assert f"password {password!r}" in first.log_path.read_text()
    client = _client(first, password)

    while True:
        jobs = client.get(f"/projects/{DEMO_PROJECT}/jobs").json()
        if len(jobs) == len(DEMO_MODELS) and all(j["state"] == "succeeded" for j in jobs):
            break
        assert not any(j["state"] == "failed" for j in jobs), jobs
        assert time.monotonic() - t0 < 60, f"demo masks not made within a minute: {jobs}"
        time.sleep(0.5)
    assert {j["model"] for j in jobs} == {m[0] for m in DEMO_MODELS}
    models = client.get(f"/projects/{DEMO_PROJECT}/models").json()
    assert all(m["automation"] for m in models)
    resources = client.get(jobs[0]["resources_url"].removeprefix("/api/v1")).json()
    assert {f["label"] for f in resources} == {m[0] for m in DEMO_MODELS}
    assert all({x["name"] for x in f["files"]} == OUTPUTS for f in resources)
    sessions = client.get(f"/projects/{DEMO_PROJECT}/sessions").json()
    assert len(sessions) == 1 and len(sessions[0]["scans"]) == 1
    first.stop()

    second = Service(data, free_port(), {}, ("--demo",))
    started.append(second)
    client = _client(second, password)  # the same account and password
    assert len(client.get(f"/projects/{DEMO_PROJECT}/jobs").json()) == len(DEMO_MODELS)
    second.log.flush()
    assert "demo project DEMO is here" in second.log_path.read_text()


def test_no_demo_in_a_data_folder_that_has_accounts(tmp_path: Path, started) -> None:
    data = tmp_path / "data"
    create_user(data, "someone", "their-password")
    service = Service(data, free_port(), {}, ("--demo",))
    started.append(service)
    service.log.flush()
    assert "no demo was made" in service.log_path.read_text()
    assert not (data / CREDENTIALS_FILE).exists()
    r = httpx.post(
        f"{service.url}/api/v1/auth/token", json={"username": DEMO_USER, "password": "x"}
    )
    assert r.status_code == 401
