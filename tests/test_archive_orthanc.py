"""A project follows a real Orthanc: CT, then RTSTRUCT and SEG stored there become
sessions, scans and collections in segmap, the automated model's masks are right voxel
for voxel, and with ``push_masks`` the derived SEG is in Orthanc afterwards (found by
QIDO, read back to the same mask) and never imported back. Also: segmap stopped while
changes arrive, and Orthanc stopped and started again, lose nothing and import once.

SQLite and PostgreSQL (the ``world`` fixture). The masks' truths come from
``test_convert_truth`` (RTSTRUCT) and the hand-counted boxes of ``write_seg`` (SEG).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from archive_helpers import (
    archive_state,
    collections,
    connect,
    derived_seg_in_orthanc,
    fast_app,
    orthanc_server,
    read_back_seg,
    seg_truth,
    wait_for,
)
from imaging_data import write_seg
from jobs_helpers import assert_mask_matches_truth, small_case, truth_rois
from segmap import testing as syn
from segmap.server.settings import Settings
from segmap.testing.orthanc import OrthancServer
from server_fixtures import Api, World
from test_jobs_api import put_map, wait_for_jobs

SEG_LABELS = ["Liver", "Spleen"]


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    yield from fast_app(settings)


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path)


@pytest.fixture()
def automated(world: World) -> World:
    r = world.client.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    put_map(world, "liver-ct", syn.PHANTOM_REGION_VALUES)
    return world


def mask_of(world: World, job: dict[str, Any]) -> bytes:
    r = world.client.get(
        f"{job['resources_url']}/liver-ct/files/mask.nii.gz", headers=world.h("member")
    )
    assert r.status_code == 200, r.text
    return bytes(r.content)


def test_orthanc_annotations_become_masks_and_the_seg_goes_back(
    automated: World, orthanc: OrthancServer, tmp_path: Path
) -> None:
    world = automated
    connect(world, {"kind": "orthanc", "url": orthanc.url, "push_masks": True})
    case = small_case(tmp_path / "case", 41)
    study = pydicom.dcmread(case.series.files[0], stop_before_pixels=True).StudyInstanceUID
    orthanc.store_files(list(case.series.files))
    orthanc.store_files([case.rtstruct_path])

    (job,) = wait_for_jobs(world, 1)
    assert job["state"] == "succeeded" and job["trigger"] == "automation", job
    rois = truth_rois(case)
    (tmp_path / "rt").mkdir()
    assert_mask_matches_truth(mask_of(world, job), case.series.folder, rois, tmp_path / "rt")
    (only,) = collections(world)
    assert only["type"] == "RTSTRUCT"
    assert only["stored_via"] == "archive"  # the session page says it came from the archive

    # The derived SEG is pushed: QIDO on Orthanc finds it, and it reads back to the mask.
    (pushed,) = wait_for(
        "the derived SEG in Orthanc", lambda: derived_seg_in_orthanc(orthanc, study)
    )
    back = read_back_seg(orthanc, study, pushed, list(case.series.files), syn.PHANTOM_REGION_VALUES)
    mask = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(mask_of(world, job))).dataobj)
    assert np.array_equal(back, mask)

    # A SEG stored next: a second collection, and its boxes in the model's mask.
    seg_path = write_seg(tmp_path / "seg.dcm", case.series, SEG_LABELS)
    orthanc.store_files([seg_path])
    jobs = wait_for_jobs(world, 2)
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    seg_job = next(j for j in jobs if j["id"] != job["id"])
    data = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(mask_of(world, seg_job))).dataobj)
    values = [syn.PHANTOM_REGION_VALUES[label] for label in SEG_LABELS]
    assert np.array_equal(data, seg_truth(data.shape, values))

    # segmap's own SEGs (two pushed by now) are never imported back.
    state = wait_for("the second push", lambda: (s := archive_state(world))["pushed"] == 2 and s)
    assert state["imported"] == 2 and state["last_error"] is None
    assert sorted(c["type"] for c in collections(world)) == ["RTSTRUCT", "SEG"]
    assert len(wait_for_jobs(world, 2)) == 2
    imported = {e["series_instance_uid"] for e in state["recent"] if e["event"] == "imported"}
    pushed_series = {e["series_instance_uid"] for e in state["recent"] if e["event"] == "pushed"}
    sent = {
        pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID
        for p in (case.rtstruct_path, seg_path)
    }
    assert imported == sent and len(pushed_series) == 2 and not pushed_series & imported
    assert set(derived_seg_in_orthanc(orthanc, study)) == pushed_series


def test_changes_while_segmap_is_stopped_are_imported_once_after_restart(
    automated: World, orthanc: OrthancServer, settings: Settings, tmp_path: Path
) -> None:
    world = automated
    connect(world, {"kind": "orthanc", "url": orthanc.url})
    wait_for("first contact", lambda: archive_state(world)["last_contact_at"])
    world.client.__exit__(None, None, None)  # segmap stops (its lifespan ends)

    case = small_case(tmp_path / "case", 42)
    orthanc.store_files(list(case.series.files))
    orthanc.store_files(
        [case.rtstruct_path, write_seg(tmp_path / "seg.dcm", case.series, SEG_LABELS)]
    )

    for _ in range(2):  # started again, twice: the second start finds nothing new
        again = fast_app_started(settings)
        try:
            later = World(api=Api(again, again.app), headers=world.headers, model_id=world.model_id)
            wait_for("both imports", lambda w=later: archive_state(w)["imported"] == 2)
            jobs = wait_for_jobs(later, 2)
            assert len(jobs) == 2 and all(j["state"] == "succeeded" for j in jobs), jobs
            assert sorted(c["type"] for c in collections(later)) == ["RTSTRUCT", "SEG"]
            # Once: one session with one scan holding each CT slice once.
            (session,) = later.client.get(
                "/api/v1/projects/P/sessions", headers=later.h("owner")
            ).json()
            (scan,) = session["scans"]
            assert scan["slice_count"] == len(case.series.files)
            state = archive_state(later)
            assert [e["event"] for e in state["recent"]].count("imported") == 2
        finally:
            again.__exit__(None, None, None)
            again.app.state.database.dispose()


def fast_app_started(settings: Settings) -> TestClient:
    """A new service on the same data folder and database, started."""
    app = next(fast_app(settings))
    client = TestClient(app)
    client.__enter__()
    return client


def test_orthanc_stopped_and_started_again_loses_no_change(
    automated: World, orthanc: OrthancServer, tmp_path: Path
) -> None:
    world = automated
    connect(world, {"kind": "orthanc", "url": orthanc.url})
    case = small_case(tmp_path / "case", 43)
    orthanc.store_files(list(case.series.files))
    orthanc.store_files([case.rtstruct_path])
    orthanc.stop()
    state = wait_for("the error", lambda: (s := archive_state(world))["last_error"] and s)
    assert "cannot reach the archive" in state["last_error"], state
    orthanc.start()
    orthanc.store_files([write_seg(tmp_path / "seg.dcm", case.series, SEG_LABELS)])
    wait_for("both imports", lambda: archive_state(world)["imported"] == 2)
    jobs = wait_for_jobs(world, 2)
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    assert sorted(c["type"] for c in collections(world)) == ["RTSTRUCT", "SEG"]
    state = wait_for(
        "contact again", lambda: (s := archive_state(world))["last_error"] is None and s
    )
    assert state["last_contact_at"] is not None


def test_prefetched_images_are_not_fetched_again_with_the_annotation(
    automated: World, orthanc: OrthancServer, tmp_path: Path
) -> None:
    world = automated
    connect(world, {"kind": "orthanc", "url": orthanc.url, "prefetch_images": True})
    case = small_case(tmp_path / "case", 44)
    orthanc.store_files(list(case.series.files))

    def scan() -> Any:
        sessions = world.client.get("/api/v1/projects/P/sessions", headers=world.h("owner")).json()
        return sessions and sessions[0]["scans"][0]["slice_count"] == len(case.series.files)

    wait_for("the prefetched CT (StableSeries)", scan)
    assert collections(world) == []
    orthanc.store_files([case.rtstruct_path])
    (job,) = wait_for_jobs(world, 1)
    (tmp_path / "rt").mkdir()
    assert_mask_matches_truth(
        mask_of(world, job), case.series.folder, truth_rois(case), tmp_path / "rt"
    )
    (event,) = [e for e in archive_state(world)["recent"] if e["event"] == "imported"]
    assert event["instances"] == 1 and "0 image instance(s)" in event["detail"], event
