"""Jobs on a real Dask distributed cluster reached over TCP (``SEGMAP_DASK_SCHEDULER``).

The cluster is a ``distributed.LocalCluster`` whose workers are threads of this test
process (``processes=False``) but talk to the scheduler and to the service's client over
TCP. The job log names the cluster and the worker's process id (this process, not a
local pool worker), and the mask is judged against the independent truth.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jobs_helpers import assert_mask_matches_truth, small_case, truth_rois
from segmap import testing as syn
from segmap.server.accounts.service import issue_token
from segmap.server.app import create_app
from segmap.server.db.accounts import User
from segmap.server.settings import DASK_ENV, Settings
from segmap.server.web import auth


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=None
    ) as c:
        yield c


def _owner_token(app: Any) -> str:
    with app.state.database.session(write=True) as db:
        user = User(
            username="dora", username_key="dora", password_hash="x", is_admin=False, is_active=True
        )
        db.add(user)
        db.commit()
        return issue_token(db, auth.principal_of(user, "token"))


def test_jobs_run_on_a_dask_cluster_over_tcp(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = cluster.scheduler_address
    assert address.startswith("tcp://")
    # The service reads the scheduler from the environment, as in production.
    monkeypatch.setenv(DASK_ENV, address)
    settings = Settings.from_env(tmp_path / "data")
    assert settings.dask_scheduler == address
    app = create_app(settings)
    case = small_case(tmp_path / "case", 41)
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {_owner_token(app)}"}
        assert (
            client.post("/api/v1/projects", json={"id": "D", "name": "Dask"}, headers=h).status_code
            == 201
        )
        for label, spacing in (("a", [2, 2, 4]), ("b", [3, 3, 3])):
            r = client.post(
                "/api/v1/projects/D/models",
                headers=h,
                json={"label": label, "voxel_spacing": spacing, "automation": True},
            )
            assert r.status_code == 201
            text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items())
            r = client.put(
                f"/api/v1/projects/D/models/{label}/resources/m/files/region2MaskValueMap.txt",
                content=text.encode(),
                headers=h,
            )
            assert r.status_code == 201
        files = [
            ("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files
        ]
        r = client.post("/api/v1/projects/D/sessions", files=files, headers=h)
        session = r.json()["sessions"][0]["id"]
        r = client.put(
            f"/api/v1/projects/D/sessions/{session}/collections/rois",
            content=case.rtstruct_path.read_bytes(),
            params={"type": "RTSTRUCT"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 120
        while True:
            jobs = client.get("/api/v1/projects/D/jobs", headers=h).json()
            if len(jobs) == 2 and all(j["state"] in ("succeeded", "failed") for j in jobs):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.3)
        for job in jobs:
            assert job["state"] == "succeeded", job
            log = client.get(job["url"], headers=h).json()["log"]
            assert f"on a Dask cluster at {address}" in log
            assert "worker converting job" in log and " pid " not in log
            base = job["resources_url"]
            mask = client.get(f"{base}/{job['model']}/files/mask.nii.gz", headers=h).content
            (tmp_path / job["model"]).mkdir()
            assert_mask_matches_truth(
                mask, case.series.folder, truth_rois(case), tmp_path / job["model"]
            )
