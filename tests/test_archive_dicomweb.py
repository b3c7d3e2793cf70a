"""The ``dicomweb`` kind against Orthanc's DICOMweb plugin (QIDO polling, WADO-RS,
STOW-RS), and imports by hand through the API and ``segmap archive import``.

SQLite and PostgreSQL; the truths as in ``test_archive_orthanc``.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest

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
from server_fixtures import World
from test_archive_orthanc import SEG_LABELS, mask_of
from test_jobs_api import put_map, wait_for_jobs


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


def test_dicomweb_archive_is_polled_and_the_seg_is_stowed_back(
    automated: World, orthanc: OrthancServer, tmp_path: Path
) -> None:
    world = automated
    connect(world, {"kind": "dicomweb", "url": orthanc.dicomweb_url, "push_masks": True})
    case = small_case(tmp_path / "case", 51)
    study = pydicom.dcmread(case.series.files[0], stop_before_pixels=True).StudyInstanceUID
    orthanc.store_files([*case.series.files, case.rtstruct_path])

    (job,) = wait_for_jobs(world, 1)
    assert job["state"] == "succeeded", job
    (tmp_path / "rt").mkdir()
    assert_mask_matches_truth(
        mask_of(world, job), case.series.folder, truth_rois(case), tmp_path / "rt"
    )
    (pushed,) = wait_for("the STOWed SEG", lambda: derived_seg_in_orthanc(orthanc, study))
    back = read_back_seg(orthanc, study, pushed, list(case.series.files), syn.PHANTOM_REGION_VALUES)
    mask = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(mask_of(world, job))).dataobj)
    assert np.array_equal(back, mask)

    orthanc.store_files([write_seg(tmp_path / "seg.dcm", case.series, SEG_LABELS)])
    jobs = wait_for_jobs(world, 2)
    seg_job = next(j for j in jobs if j["id"] != job["id"])
    assert seg_job["state"] == "succeeded", seg_job
    data = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(mask_of(world, seg_job))).dataobj)
    values = [syn.PHANTOM_REGION_VALUES[label] for label in SEG_LABELS]
    assert np.array_equal(data, seg_truth(data.shape, values))
    state = wait_for("the second push", lambda: (s := archive_state(world))["pushed"] == 2 and s)
    # Polls see the pushed SEGs and the imported series again: nothing more is imported.
    wait_for(
        "another poll", lambda: archive_state(world)["last_contact_at"] > state["last_contact_at"]
    )
    final = archive_state(world)
    assert final["imported"] == 2 and final["last_error"] is None
    assert sorted(c["type"] for c in collections(world)) == ["RTSTRUCT", "SEG"]
    assert len(wait_for_jobs(world, 2)) == 2


def test_by_hand_through_the_api_and_the_command_line(
    automated: World, orthanc: OrthancServer, tmp_path: Path, settings: Settings
) -> None:
    world = automated
    # A filter nothing passes: the follower imports nothing by itself.
    connect(
        world,
        {"kind": "orthanc", "url": orthanc.url, "filter": {"StudyDescription": "NO SUCH STUDY"}},
    )
    first, second = small_case(tmp_path / "a", 52), small_case(tmp_path / "b", 53)
    for case in (first, second):
        orthanc.store_files([*case.series.files, case.rtstruct_path])
    state = wait_for(
        "both skipped",
        lambda: (s := archive_state(world))["recent"] and len(s["recent"]) == 2 and s,
    )
    assert {e["event"] for e in state["recent"]} == {"skipped"}
    assert "StudyDescription" in state["recent"][0]["detail"]
    assert collections(world) == []

    uid = pydicom.dcmread(first.series.files[0], stop_before_pixels=True).StudyInstanceUID
    url = f"{world.project_url}/archive/import"
    assert (
        world.client.post(url, json={"studies": [uid]}, headers=world.h("member")).status_code
        == 403
    )
    r = world.client.post(url, json={"studies": ["1.2.03"]}, headers=world.h("owner"))
    assert r.status_code == 422 and "1.2.03" in r.text
    r = world.client.post(url, json={"studies": [uid]}, headers=world.h("owner"))
    assert r.status_code == 202, r.text
    status_url = r.json()["url"]
    done = wait_for(
        "the import",
        lambda: (
            (j := world.client.get(status_url, headers=world.h("owner")).json())["state"]
            in ("succeeded", "failed")
            and j
        ),
    )
    assert done["state"] == "succeeded" and done["progress"] == 1.0 and done["imported"] >= 1, done
    (job,) = wait_for_jobs(world, 1)
    (tmp_path / "m1").mkdir()
    assert_mask_matches_truth(
        mask_of(world, job), first.series.folder, truth_rois(first), tmp_path / "m1"
    )
    r = world.client.post(url, json={"studies": ["1.2.3.4.5.6.7"]}, headers=world.h("owner"))
    missing = wait_for(
        "the failed import",
        lambda: (
            (j := world.client.get(r.json()["url"], headers=world.h("owner")).json())["state"]
            == "failed"
            and j
        ),
    )
    assert "holds no study 1.2.3.4.5.6.7" in missing["error"]

    # The command line: the second study, converted by the running service.
    uid2 = pydicom.dcmread(second.series.files[0], stop_before_pixels=True).StudyInstanceUID
    extra = ["--database-url", settings.database_url] if settings.database_url else []
    cli = [
        sys.executable,
        "-m",
        "segmap.cli",
        "archive",
        "import",
        "--project",
        "P",
        "--data",
        str(settings.data_dir),
        *extra,
    ]
    ran = subprocess.run([*cli, "--study", uid2], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "series imported" in ran.stdout and "Traceback" not in ran.stderr
    jobs = wait_for_jobs(world, 2)
    later = next(j for j in jobs if j["id"] != job["id"])
    (tmp_path / "m2").mkdir()
    assert_mask_matches_truth(
        mask_of(world, later), second.series.folder, truth_rois(second), tmp_path / "m2"
    )
    bad = subprocess.run(
        [*cli, "--study", "1.2.3.4.5.6.8"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "holds no study 1.2.3.4.5.6.8" in bad.stderr
    assert "Traceback" not in bad.stderr
    nowhere = subprocess.run(
        [*cli[:6], "NOPE", *cli[7:], "--study", uid2], capture_output=True, text=True, timeout=120
    )
    assert nowhere.returncode == 1 and "no project 'NOPE'" in nowhere.stderr
