"""Jobs through the REST API, with the real app, database, storage and worker processes.

Runs on SQLite and PostgreSQL. An RTSTRUCT uploaded onto a session makes one job per
automated model; the runner (started by the app's lifespan) converts it on the local
process pool, and the masks it stores on the scan are judged voxel for voxel against the
independent truth of ``test_convert_truth``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from jobs_helpers import assert_mask_matches_truth, small_case, truth_rois
from segmap import testing as syn
from server_fixtures import World

OUTPUTS = {
    "mask.nii.gz",
    "image_resampled.nii.gz",
    "mask_resampled.nii.gz",
    "report.json",
    "preview.png",
    "seg.dcm",  # the mask as a DICOM SEG, also a series of the study (DICOMweb, OHIF)
}
ORGANS = {"Liver": 5, "Kidneys": 6, "Spleen": 7}  # another model, other values, fewer labels
DONE = ("succeeded", "failed")


def wait_for_jobs(
    world: World, count: int, timeout_s: float = 180.0, project: str = "P"
) -> list[dict[str, Any]]:
    """Poll the project's jobs until ``count`` of them exist and all have finished."""
    deadline = time.monotonic() + timeout_s
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = world.client.get(f"/api/v1/projects/{project}/jobs", headers=world.h("owner"))
        assert r.status_code == 200, r.text
        jobs = r.json()
        if len(jobs) >= count and all(j["state"] in DONE for j in jobs):
            return jobs
        time.sleep(0.3)
    raise AssertionError(f"jobs did not finish in {timeout_s} s: {jobs}")


def put_map(world: World, model: str | int, values: dict[str, int]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    r = world.client.put(
        f"/api/v1/projects/P/models/{model}/resources/maps/files/region2MaskValueMap.txt",
        content=text.encode(),
        headers=world.h("owner"),
    )
    assert r.status_code in (200, 201), r.text


def upload_case(
    world: World, case: syn.SyntheticCase, label: str = "rois", **params: str
) -> dict[str, Any]:
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = world.client.post("/api/v1/projects/P/sessions", files=files, headers=world.h("owner"))
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{session['id']}/collections/{label}",
        content=case.rtstruct_path.read_bytes(),
        params={"type": "RTSTRUCT", **params},
        headers=world.h("owner"),
    )
    assert r.status_code in (200, 201), r.text
    return {"session": session, "collection": r.json()}


def download(world: World, url: str) -> bytes:
    r = world.client.get(url, headers=world.h("member"))
    assert r.status_code == 200, r.text
    return r.content


@pytest.fixture()
def automated(world: World) -> World:
    """Model ``liver-ct`` (automation switched on by PATCH) and ``organs`` (on at creation),
    plus ``manual`` (off), each with its own region map."""
    r = world.client.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200 and r.json()["automation"] is True, r.text
    put_map(world, "liver-ct", syn.PHANTOM_REGION_VALUES)
    for label, automation, spacing in (
        ("organs", True, [2.0, 2.0, 4.0]),
        ("manual", False, [1.0, 1.0, 1.0]),
    ):
        r = world.client.post(
            "/api/v1/projects/P/models",
            headers=world.h("owner"),
            json={"label": label, "voxel_spacing": spacing, "automation": automation},
        )
        assert r.status_code == 201 and r.json()["automation"] is automation, r.text
    put_map(world, "organs", ORGANS)
    put_map(world, "manual", ORGANS)
    return world


def test_each_automated_model_gets_its_own_outputs(automated: World, tmp_path: Path) -> None:
    world = automated
    case = small_case(tmp_path / "case", 21)
    up = upload_case(world, case)
    jobs = wait_for_jobs(world, 2)
    assert len(jobs) == 2, jobs
    by_model = {j["model"]: j for j in jobs}
    assert set(by_model) == {"liver-ct", "organs"}  # not the model without automation
    for job in jobs:
        assert job["state"] == "succeeded", job
        assert job["trigger"] == "automation" and job["progress"] == 1.0
        assert job["collection"] == "rois" and job["collection_id"] == up["collection"]["id"]
        assert job["output_folder"] == job["model"] and job["error"] is None
        detail = world.client.get(job["url"], headers=world.h("collab")).json()
        assert "stored" in detail["log"] and "placing regions" in detail["log"]

    scan = up["collection"]["scan"]["id"]
    base = f"/api/v1/projects/P/sessions/{up['session']['id']}/scans/{scan}/resources"
    assert jobs[0]["resources_url"] == base
    folders = {f["label"]: f for f in world.client.get(base, headers=world.h("member")).json()}
    assert set(folders) == {"liver-ct", "organs"}
    spacing = {"liver-ct": (1.0, 1.0, 2.5), "organs": (2.0, 2.0, 4.0)}
    values = {"liver-ct": dict(syn.PHANTOM_REGION_VALUES), "organs": ORGANS}
    for label, folder in folders.items():
        files = {f["name"]: f for f in folder["files"]}
        assert set(files) == OUTPUTS
        mask = download(world, f"{base}/{label}/files/mask.nii.gz")
        assert len(mask) == files["mask.nii.gz"]["size"]
        (tmp_path / label).mkdir()
        assert_mask_matches_truth(
            mask, case.series.folder, truth_rois(case, values[label]), tmp_path / label
        )
        resampled = tmp_path / label / "mask_resampled.nii.gz"
        resampled.write_bytes(download(world, f"{base}/{label}/files/mask_resampled.nii.gz"))
        img = nib.load(str(resampled))
        assert np.allclose(img.header.get_zooms()[:3], spacing[label])
        assert set(np.unique(np.asarray(img.dataobj))) <= {0, *values[label].values()}
        report = json.loads(download(world, f"{base}/{label}/files/report.json"))
        assert {r["label"]: r["value"] for r in report["region_map"]["regions"]} == values[label]
        assert download(world, f"{base}/{label}/files/preview.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any((world.api.app.state.settings.data_dir / "jobs").iterdir())


def test_replacing_a_collection_reruns_and_replaces_outputs_whole(
    automated: World, tmp_path: Path
) -> None:
    world = automated
    world.client.patch(
        "/api/v1/projects/P/models/organs", json={"automation": False}, headers=world.h("owner")
    )
    case = small_case(tmp_path / "case", 22)
    up = upload_case(world, case)
    first = wait_for_jobs(world, 1)
    scan = up["collection"]["scan"]["id"]
    base = f"/api/v1/projects/P/sessions/{up['session']['id']}/scans/{scan}/resources"
    before = world.client.get(base, headers=world.h("owner")).json()
    # The new collection holds only three ROIs: the re-run's mask must hold only them.
    kept = tuple(r for r in case.rois if r.name in ("Body", "Liver", "Lesion"))
    syn.write_rtstruct(case.rtstruct_path, case.series, kept, seed=5, label="edited")
    world.client.put(
        f"/api/v1/projects/P/sessions/{up['session']['id']}/collections/rois",
        content=case.rtstruct_path.read_bytes(),
        params={"type": "RTSTRUCT", "overwrite": "true"},
        headers=world.h("owner"),
    )
    jobs = wait_for_jobs(world, 2)
    assert [j["state"] for j in jobs] == ["succeeded", "succeeded"] and jobs[1]["id"] == first[0][
        "id"
    ]
    after = world.client.get(base, headers=world.h("owner")).json()
    assert [f["label"] for f in after] == ["liver-ct"]
    assert {f["name"] for f in after[0]["files"]} == OUTPUTS
    assert after[0]["updated_at"] > before[0]["updated_at"]
    mask = download(world, f"{base}/liver-ct/files/mask.nii.gz")
    values = {
        n: v for n, v in syn.PHANTOM_REGION_VALUES.items() if n in {"Body", "Liver", "Lesion"}
    }
    narrowed = syn.SyntheticCase(
        case.series, case.rtstruct_path, case.region_map_path, kept, values
    )
    assert_mask_matches_truth(mask, case.series.folder, truth_rois(narrowed), tmp_path)
    # One version of the folder in storage: the replaced one was deleted.
    derived = world.api.app.state.storage.objects / "scans" / str(scan) / "derived"
    assert len([p for p in derived.iterdir() if p.is_dir()]) == 1


def test_manual_conversion_permissions_and_errors(automated: World, tmp_path: Path) -> None:
    world = automated
    world.client.patch(
        "/api/v1/projects/P/models/liver-ct", json={"automation": False}, headers=world.h("owner")
    )
    world.client.patch(
        "/api/v1/projects/P/models/organs", json={"automation": False}, headers=world.h("owner")
    )
    case = small_case(tmp_path / "case", 23)
    up = upload_case(world, case)
    sid, cid = up["session"]["id"], up["collection"]["id"]
    # Automation queues its jobs inside the upload request (jobs.automation is an
    # ImagingEvents listener), so the job list is final when the upload answers.
    assert world.client.get("/api/v1/projects/P/jobs", headers=world.h("owner")).json() == []
    url = "/api/v1/projects/P/models/manual/convert"
    assert world.client.post(url, json={}, headers=world.h("member")).status_code == 403
    assert world.client.post(url, json={}, headers=world.h("collab")).status_code == 403
    assert world.client.post(url, json={}).status_code == 401
    assert (
        world.client.post(url, json={"collection": 999999}, headers=world.h("owner")).status_code
        == 404
    )
    assert (
        world.client.post(url, json={"colection": cid}, headers=world.h("owner")).status_code == 422
    )
    # A model without a region map is refused with what to do.
    r = world.client.post(
        "/api/v1/projects/P/models",
        headers=world.h("owner"),
        json={"label": "empty", "voxel_spacing": [1, 1, 1]},
    )
    r = world.client.post(
        "/api/v1/projects/P/models/empty/convert", json={}, headers=world.h("owner")
    )
    assert r.status_code == 422 and "region2MaskValueMap.txt" in r.json()["detail"]

    r = world.client.post(url, json={"collection": f"{sid}/ROIS"}, headers=world.h("owner"))
    assert r.status_code == 202, r.text
    queued = r.json()["jobs"]
    assert len(queued) == 1 and queued[0]["trigger"] == "manual"
    r = world.client.post(
        "/api/v1/projects/P/models/organs/convert",
        json={"collection": cid},
        headers=world.h("owner"),
    )
    assert r.status_code == 202
    r = world.client.post(
        "/api/v1/projects/P/models/liver-ct/convert", headers=world.h("admin")
    )  # no body: every collection
    assert r.status_code == 202 and len(r.json()["jobs"]) == 1
    jobs = wait_for_jobs(world, 3)
    assert {j["model"] for j in jobs} == {"manual", "organs", "liver-ct"}
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    assert {j["created_by"] for j in jobs} == {"owner", "admin"}

    job_url = jobs[0]["url"]
    assert world.client.get(job_url, headers=world.h("collab")).status_code == 200
    # 404, not 403: a refusal would confirm the job and name its project.
    assert world.client.get(job_url, headers=world.h("outsider")).status_code == 404
    assert world.client.get(job_url).status_code == 401
    assert world.client.get("/api/v1/jobs/987654", headers=world.h("owner")).status_code == 404
    only = world.client.get(
        "/api/v1/projects/P/jobs", params={"model": "organs"}, headers=world.h("member")
    ).json()
    assert [j["model"] for j in only] == ["organs"]
    r = world.client.get(
        "/api/v1/projects/P/jobs", params={"state": "bogus"}, headers=world.h("member")
    )
    assert r.status_code == 422
    assert (
        world.client.get("/api/v1/projects/P/jobs", headers=world.h("outsider")).status_code == 403
    )


def test_a_job_that_cannot_convert_says_why(automated: World, tmp_path: Path) -> None:
    world = automated
    world.client.patch(
        "/api/v1/projects/P/models/organs", json={"automation": False}, headers=world.h("owner")
    )
    case = small_case(tmp_path / "case", 24, size=(40, 36, 9))
    # A series with a slice missing in the middle: conversion must refuse it and say where.
    gone = case.series.files[4]
    gone.unlink()
    kept = syn.SyntheticCase(
        syn.WrittenSeries(
            **{**case.series.__dict__, "files": tuple(p for p in case.series.files if p != gone)}
        ),
        case.rtstruct_path,
        case.region_map_path,
        case.rois,
        case.region_values,
    )
    upload_case(world, kept)
    jobs = wait_for_jobs(world, 1)
    job = jobs[0]
    assert job["state"] == "failed", job
    assert job["error"] and "Traceback" not in job["error"]
    assert "gap" in job["error"].lower() or "missing" in job["error"].lower(), job["error"]
    detail = world.client.get(job["url"], headers=world.h("owner")).json()
    assert "failed" in detail["log"]


def test_patch_model_automation(world: World) -> None:
    url = world.model_url
    assert world.client.get(url, headers=world.h("owner")).json()["automation"] is False
    for who, status in (("collab", 403), ("member", 403), ("outsider", 403), ("anon", 401)):
        r = world.client.patch(url, json={"automation": True}, headers=world.h(who))
        assert r.status_code == status, (who, r.text)
    r = world.client.patch(url, json={"automation": "maybe"}, headers=world.h("owner"))
    assert r.status_code == 422
    r = world.client.patch(url, json={"automation": True, "label": "x"}, headers=world.h("owner"))
    assert r.status_code == 422
    r = world.client.patch(url, json={"automation": True}, headers=world.h("admin"))
    assert r.status_code == 200 and r.json()["automation"] is True
    assert world.client.get(url, headers=world.h("member")).json()["automation"] is True
    r = world.client.patch(
        "/api/v1/projects/P/models/liver-ct", json={"automation": False}, headers=world.h("owner")
    )
    assert r.status_code == 200 and r.json()["automation"] is False
