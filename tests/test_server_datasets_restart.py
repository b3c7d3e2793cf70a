"""Datasets survive the service: a real ``segmap serve`` stopped, or killed, while a
dataset is being frozen and another waits in the queue.

The worker is slowed down with its test hook ``SEGMAP_DATASET_CASE_DELAY_S`` (it waits
after each case it measures), so the stop lands in the middle of a freeze. A graceful stop
puts the dataset being frozen back in the queue, beside the one still queued; a restart
freezes both. A service killed with SIGKILL keeps its lease on the dataset until it
expires (``SEGMAP_JOB_LEASE_S``, short here); the next service then takes it over. In the
end every dataset is ready, downloads as a complete zip, and no work folder is left.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from jobs_helpers import Service, create_user, free_port, small_case
from segmap import testing as syn
from segmap.server.db.datasets import Dataset
from segmap.server.db.engine import Database
from segmap.server.settings import Settings

PASSWORD = "datasets-restart-password"
SLOW = {"SEGMAP_DATASET_CASE_DELAY_S": "60"}
LEASE = {"SEGMAP_JOB_LEASE_S": "3"}
MODEL = "/api/v1/projects/R/models/organs"


@pytest.fixture()
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        s.stop()


def _client(service: Service) -> httpx.Client:
    token = httpx.post(
        service.url + "/api/v1/auth/token", json={"username": "olga", "password": PASSWORD}
    ).json()["token"]
    return httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def _convert_two_cases(client: httpx.Client, root: Path) -> None:
    """Project R, an automated model with a map, two subjects uploaded and converted."""
    assert client.post("/api/v1/projects", json={"id": "R", "name": "Restart"}).status_code == 201
    r = client.post(
        "/api/v1/projects/R/models",
        json={"label": "organs", "voxel_spacing": [2, 2, 4], "automation": True},
    )
    assert r.status_code == 201, r.text
    text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items())
    r = client.put(f"{MODEL}/resources/maps/files/region2MaskValueMap.txt", content=text.encode())
    assert r.status_code == 201, r.text
    for n in range(2):
        case = small_case(root / f"c{n}", 61 + n, patient=f"RS{n}")
        files = [
            ("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files
        ]
        r = client.post("/api/v1/projects/R/sessions", files=files)
        assert r.status_code == 201, r.text
        session = r.json()["sessions"][0]["id"]
        r = client.put(
            f"/api/v1/projects/R/sessions/{session}/collections/rois",
            content=case.rtstruct_path.read_bytes(),
            params={"type": "RTSTRUCT"},
        )
        assert r.status_code == 201, r.text
    deadline = time.monotonic() + 180
    while True:
        jobs = client.get("/api/v1/projects/R/jobs").json()
        if len(jobs) == 2 and all(j["state"] in ("succeeded", "failed") for j in jobs):
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)
    assert all(j["state"] == "succeeded" for j in jobs), jobs


def _get(client: httpx.Client, name: str) -> dict[str, Any]:
    r = client.get(f"{MODEL}/datasets/{name}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _wait(client: httpx.Client, name: str, *states: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while (data := _get(client, name))["state"] not in states:
        assert data["state"] != "failed", data
        assert time.monotonic() < deadline, f"{name} never reached {states}: {data}"
        time.sleep(0.1)
    return data


def _wait_measuring(client: httpx.Client, name: str) -> None:
    """Until the dataset is freezing inside the slowed-down part (measuring its cases)."""
    deadline = time.monotonic() + 180
    while not _wait(client, name, "freezing")["stage"].startswith("measuring"):
        assert time.monotonic() < deadline, f"{name} never started measuring"
        time.sleep(0.1)


def _rows(data: Path) -> dict[str, tuple[str, str, int]]:
    """(state, stage, attempts) of every dataset, read from the database itself."""
    database = Database(Settings(data_dir=data).effective_database_url)
    try:
        with database.session() as db:
            return {d.name: (d.state, d.stage, d.attempts) for d in db.scalars(select(Dataset))}
    finally:
        database.dispose()


def _check_download(client: httpx.Client, name: str) -> None:
    data = _get(client, name)
    r = client.get(data["download_urls"]["nnunet"])
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.testzip() is None
        labels = [n for n in archive.namelist() if "/labelsTr/" in n and n.endswith(".nii.gz")]
        assert len(labels) == data["case_count"] == 2


def test_datasets_in_the_queue_or_freezing_are_frozen_after_a_restart(
    tmp_path: Path, services: list[Service]
) -> None:
    data = tmp_path / "data"
    create_user(data, "olga", PASSWORD)
    first = Service(data, free_port(), SLOW)
    services.append(first)
    client = _client(first)
    _convert_two_cases(client, tmp_path / "cases")
    assert client.post(f"{MODEL}/datasets", json={"name": "A", "folds": 2}).status_code == 202
    _wait_measuring(client, "A")
    assert client.post(f"{MODEL}/datasets", json={"name": "B", "folds": 2}).status_code == 202
    assert _get(client, "B")["state"] == "queued"  # one worker, busy with A

    first.stop()  # SIGTERM: the service shuts down gracefully
    rows = _rows(data)
    assert rows["A"] == ("queued", "waiting: the service stopped while freezing it", 1)
    assert rows["B"][0] == "queued" and rows["B"][2] == 0

    second = Service(data, free_port(), {})
    services.append(second)
    client = _client(second)
    for name in ("A", "B"):
        ready = _wait(client, name, "ready")
        assert ready["case_count"] == 2
        _check_download(client, name)
    assert _rows(data)["A"][2] == 2
    second.stop()

    # Killed while freezing: the dataset is taken over once the dead service's lease ends.
    third = Service(data, free_port(), {**SLOW, **LEASE})
    services.append(third)
    client = _client(third)
    assert client.post(f"{MODEL}/datasets", json={"name": "C", "folds": 2}).status_code == 202
    _wait_measuring(client, "C")
    third.kill()
    assert _rows(data)["C"][0] == "freezing"
    fourth = Service(data, free_port(), LEASE)
    services.append(fourth)
    client = _client(fourth)
    ready = _wait(client, "C", "ready")
    assert ready["attempts"] == 2
    _check_download(client, "C")
    stores = data / "storage" / "objects" / "datasets"
    assert sorted(p.name for p in stores.iterdir()) == sorted(
        str(_get(client, n)["id"]) for n in ("A", "B", "C")
    )  # nothing half-made left behind: no work or staging folders
