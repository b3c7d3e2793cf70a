"""Nothing left behind, nothing readable by others (issue 9, point 6).

* A real ``segmap serve`` killed with SIGKILL in the middle of an upload leaves its
  ``.part`` file; the next start-up removes it at once (not an hour later), while a
  second service running on the same data folder keeps its own upload in progress.
* The orphan sweep runs in the background on its interval and removes a stored DICOM
  file that nothing references, and only that; it stops with the app.
* The database, its WAL files, the storage folders and files, staging and the jobs
  folder are created owner-only (0700 / 0600) whatever the umask.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from imaging_data import write_study
from jobs_helpers import Service, create_user, free_port
from segmap.server.settings import Settings
from server_fixtures import World

SESSIONS = "/api/v1/projects/P/sessions"
PASSWORD = "disk-test-password"


def _wait_until(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


# --------------------------------------------------------------------------- kill -9


@pytest.fixture()
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        s.stop()


def _parts(data: Path) -> list[Path]:
    return sorted((data / "storage" / "staging").rglob("*.part"))


def _token(service: Service) -> str:
    r = httpx.post(
        service.url + "/api/v1/auth/token",
        json={"username": "owner", "password": PASSWORD},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def _start_upload(service: Service, token: str, body: bytes, declared: int) -> socket.socket:
    """A raw-body DICOM upload that has sent ``body`` of its ``declared`` length."""
    parts = urlsplit(service.url)
    head = (
        f"POST {SESSIONS}?name=slice.dcm HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/dicom\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    s = socket.create_connection((parts.hostname, parts.port), timeout=60)
    s.sendall(head + body)
    return s


def _status_of(s: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    return int(answer.split(b" ")[1])


def test_kill_9_mid_upload_leaves_parts_that_the_next_start_up_removes(
    tmp_path: Path, services: list[Service]
) -> None:
    data = tmp_path / "data"
    create_user(data, "owner", PASSWORD)
    first = Service(data, free_port(), {})
    services.append(first)
    token = _token(first)
    r = httpx.post(
        first.url + "/api/v1/projects",
        json={"id": "P", "name": "P"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    slice_bytes = write_study(tmp_path, seed=51, patient_id="KILL", slices=1).files[0].read_bytes()
    half = len(slice_bytes) // 2

    # An upload in progress on the first service survives a second one starting up.
    upload = _start_upload(first, token, slice_bytes[:half], len(slice_bytes))
    assert _wait_until(lambda: len(_parts(data)) == 1)
    [in_progress] = _parts(data)
    second = Service(data, free_port(), {})
    services.append(second)
    assert _parts(data) == [in_progress]
    upload.sendall(slice_bytes[half:])
    assert _status_of(upload) == 201
    upload.close()

    # Killed in the middle of the next one: its .part stays behind...
    upload = _start_upload(first, token, b"\0" * 128 + b"DICM" + bytes(4096), 10 * 1024**2)
    assert _wait_until(lambda: len(_parts(data)) == 1)
    [left] = _parts(data)
    first.kill()
    upload.close()
    assert left.exists()

    # ...until the next start-up, which removes it at once; the live service's own
    # staging folder is left alone.
    def owned_by(service: Service, folder: str) -> list[str]:
        return sorted(
            p.name
            for p in (data / "storage" / folder).iterdir()
            if p.name.startswith(f"{service.process.pid}-")
        )

    live = owned_by(second, "staging")
    assert len(live) == 1 and len(owned_by(second, "locks")) == 1
    third = Service(data, free_port(), {})
    services.append(third)
    assert _parts(data) == []
    assert not left.parent.exists()
    assert owned_by(first, "staging") == owned_by(first, "locks") == []
    assert owned_by(second, "staging") == live
    # The second service still takes uploads.
    s = _start_upload(second, _token(second), slice_bytes, len(slice_bytes))
    assert _status_of(s) == 200  # already stored by the first upload
    s.close()


# --------------------------------------------------------------------------- sweep


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """SQLite; the orphan sweep every 0.1 s (it spares files younger than an hour)."""
    return Settings(
        data_dir=tmp_path / "data", max_upload_bytes=3 * 1024**2, orphan_sweep_interval_s=0.1
    )


def test_the_background_sweep_removes_a_stored_dicom_nothing_references(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=52, patient_id="SWEEP", slices=2)
    parts = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in study.files]
    r = world.client.post(SESSIONS, files=parts, headers=world.h("owner"))
    assert r.status_code == 201, r.text
    storage = world.api.app.state.storage
    scans = storage.objects / "scans"
    referenced = sorted(p for p in scans.rglob("*") if p.is_file())
    assert len(referenced) == 2
    folder = referenced[0].parent
    # Left by a crash between placing files and committing their rows, two hours ago...
    orphan = folder / "0123456789abcdef0123456789abcdef.dcm"
    orphan.write_bytes(study.files[0].read_bytes())
    past = time.time() - 7200
    os.utime(orphan, (past, past))
    # ...and one placed just now by an upload that may still commit.
    young = folder / "fedcba9876543210fedcba9876543210.dcm"
    young.write_bytes(study.files[1].read_bytes())

    sweeper = world.api.app.state.orphan_sweeper
    assert _wait_until(lambda: not orphan.exists(), timeout_s=20)
    done = sweeper.sweeps
    assert _wait_until(lambda: sweeper.sweeps > done)  # a whole sweep after the removal
    assert young.exists()
    assert all(p.exists() for p in referenced)
    for entry in world.client.get(SESSIONS, headers=world.h("owner")).json()[0]["scans"]:
        assert entry["slice_count"] == 2


def test_the_sweep_stops_with_the_app(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app):
        sweeper = app.state.orphan_sweeper
        assert sweeper.running
        assert any(t.name == "segmap-sweeper" for t in threading.enumerate())
    assert not sweeper.running
    assert not any(t.name == "segmap-sweeper" for t in threading.enumerate())


# --------------------------------------------------------------------------- modes


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_folder_database_and_storage_are_owner_only_whatever_the_umask(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from segmap.server.app import create_app
    from server_fixtures import Api

    data = tmp_path / "fresh" / "data"
    old = os.umask(0)  # the most permissive: nothing may depend on the umask
    try:
        app = create_app(Settings(data_dir=data, max_upload_bytes=3 * 1024**2))
        with TestClient(app) as client:
            api = Api(client, app)
            headers = Api.auth(api.make_user("owner"))
            assert (
                client.post(
                    "/api/v1/projects", json={"id": "P", "name": "P"}, headers=headers
                ).status_code
                == 201
            )
            study = write_study(tmp_path, seed=53, patient_id="MODES", slices=2)
            parts = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in study.files]
            assert client.post(SESSIONS, files=parts, headers=headers).status_code == 201
            storage = app.state.storage
            folders = [data, data / "jobs", storage.root, storage.objects, storage.staging]
            folders += [storage.root / "staging", storage.root / "locks"]
            folders += [p for p in storage.objects.rglob("*") if p.is_dir()]
            files = [data / "segmap.sqlite3", data / "secret_key"]
            files += [p for p in data.glob("segmap.sqlite3-*")]  # -wal, -shm
            files += [p for p in storage.objects.rglob("*") if p.is_file()]
            files += [p for p in (storage.root / "locks").glob("*.lock")]
            assert any(p.name.endswith("-wal") for p in files)
            assert len([p for p in files if p.suffix == ".dcm"]) == 2
            wrong = {
                str(p.relative_to(tmp_path)): oct(_mode(p)) for p in folders if _mode(p) != 0o700
            }
            wrong |= {
                str(p.relative_to(tmp_path)): oct(_mode(p)) for p in files if _mode(p) != 0o600
            }
            assert wrong == {}
        app.state.database.dispose()
    finally:
        os.umask(old)
