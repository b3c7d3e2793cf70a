"""The private Orthanc launcher: a real /usr/sbin/Orthanc with its DICOMweb plugin."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest

from segmap.testing import StudyIdentity, axial_grid, write_ct_series
from segmap.testing.orthanc import Credentials, OrthancError, OrthancServer, missing_parts


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A tiny synthetic CT (4 slices of 8 x 6 pixels)."""
    grid = axial_grid((8, 6, 4), (1.0, 1.0, 2.0))
    volume = np.arange(np.prod(grid.array_shape)).reshape(grid.array_shape) % 300
    series = write_ct_series(
        tmp_path_factory.mktemp("ct"),
        grid,
        volume,
        identity=StudyIdentity.generate("orthanc-test", patient_id="ORTH01"),
    )
    return list(series.files)


@pytest.fixture(scope="module")
def orthanc_ready() -> None:
    reason = missing_parts()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: Orthanc tests must run here)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture()
def orthanc(orthanc_ready: None, tmp_path: Path) -> Iterator[OrthancServer]:
    with OrthancServer(tmp_path / "orthanc", stable_age_s=1) as server:
        yield server


def test_store_then_find_by_qido(orthanc: OrthancServer, ct_files: list[Path]) -> None:
    first = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    ids = orthanc.store_files(ct_files)
    assert len(set(ids)) == len(ct_files)

    studies = httpx.get(
        f"{orthanc.dicomweb_url}/studies",
        params={"PatientID": "ORTH01"},
        headers={"Accept": "application/dicom+json"},
    )
    assert studies.status_code == 200
    found = [s["0020000D"]["Value"][0] for s in studies.json()]
    assert found == [first.StudyInstanceUID]

    series = httpx.get(
        f"{orthanc.dicomweb_url}/studies/{first.StudyInstanceUID}/series",
        headers={"Accept": "application/dicom+json"},
    ).json()
    assert [s["0020000E"]["Value"][0] for s in series] == [first.SeriesInstanceUID]
    instances = httpx.get(
        f"{orthanc.dicomweb_url}/studies/{first.StudyInstanceUID}/series/"
        f"{first.SeriesInstanceUID}/instances",
        headers={"Accept": "application/dicom+json"},
    ).json()
    uids = {i["00080018"]["Value"][0] for i in instances}
    expected = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in ct_files}
    assert uids == expected


def test_other_study_is_not_found(orthanc: OrthancServer, ct_files: list[Path]) -> None:
    orthanc.store_files(ct_files[:1])
    answer = httpx.get(
        f"{orthanc.dicomweb_url}/studies",
        params={"PatientID": "NOBODY"},
        headers={"Accept": "application/dicom+json"},
    )
    # Orthanc answers an empty match with 200 and [] (some servers use 204).
    assert answer.status_code in (200, 204)
    assert answer.status_code == 204 or answer.json() == []


def test_credentials_are_required_when_set(
    orthanc_ready: None, tmp_path: Path, ct_files: list[Path]
) -> None:
    creds = Credentials("segmap", "s3cret-pass")
    with OrthancServer(tmp_path / "o", credentials=creds) as server:
        assert httpx.get(f"{server.dicomweb_url}/studies").status_code == 401
        wrong = httpx.get(f"{server.dicomweb_url}/studies", auth=("segmap", "nope"))
        assert wrong.status_code == 401
        server.store_files(ct_files[:1])  # the helper sends the credentials
        ok = httpx.get(f"{server.dicomweb_url}/studies", auth=server.auth)
        assert ok.status_code == 200 and len(ok.json()) == 1


def test_restart_keeps_storage_and_port(orthanc: OrthancServer, ct_files: list[Path]) -> None:
    orthanc.store_files(ct_files)
    url = orthanc.url
    orthanc.stop()
    assert not orthanc.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/system", timeout=2)
    orthanc.start()
    assert orthanc.url == url
    assert len(orthanc.get_json("/instances")) == len(ct_files)


def test_stable_age_reports_stable_series(orthanc: OrthancServer, ct_files: list[Path]) -> None:
    orthanc.store_files(ct_files[:2])
    deadline = time.monotonic() + 20
    kinds: set[str] = set()
    while time.monotonic() < deadline and "StableSeries" not in kinds:
        changes = orthanc.get_json("/changes?since=0&limit=1000")["Changes"]
        kinds = {c["ChangeType"] for c in changes}
        time.sleep(0.2)  # polling interval; the loop ends on the condition
    assert "StableSeries" in kinds


def test_start_failure_names_the_log(orthanc_ready: None, tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port is held, so Orthanc cannot listen on it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = OrthancServer(tmp_path / "bad", port=taken.getsockname()[1])
        try:
            with pytest.raises(OrthancError, match="Orthanc exited while starting"):
                server.start(timeout_s=20)
        finally:
            server.close()
    assert not server.running
