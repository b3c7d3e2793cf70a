"""Datasets through the REST API: real app, database (SQLite and PostgreSQL), storage,
job runner and dataset worker.

Synthetic phantom cases are uploaded and converted by the model's automation; a dataset
of the conversions is then frozen by the service's worker and downloaded as zips, which
are read with ``zipfile`` and judged against independent truths: the contours' even-odd
voxels (``test_convert_truth``), the DICOM headers' geometry, MONAI's datalist loader and
nnU-Net's own integrity check.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from jobs_helpers import LPS_FROM_RAS, assert_mask_matches_truth, small_case, truth_rois
from segmap import testing as syn
from server_fixtures import World
from test_convert_truth import dicom_voxel_to_lps, truth_labels_ijk
from test_jobs_api import put_map, wait_for_jobs

VALUES = dict(syn.PHANTOM_REGION_VALUES)
SPACING = (1.0, 1.0, 2.5)  # the world's model liver-ct
DONE = ("ready", "failed")


@dataclass
class Uploaded:
    """A case uploaded to the server: its session, collection and truth."""

    case: syn.SyntheticCase
    session: dict[str, Any]
    collection: dict[str, Any]
    uploader: str


@dataclass
class Converted:
    """The world with cases uploaded and converted by the model ``liver-ct``."""

    world: World
    cases: list[Uploaded]

    @property
    def datasets_url(self) -> str:
        return f"{self.world.project_url}/models/liver-ct/datasets"

    def by_session(self, label: str) -> Uploaded:
        return next(u for u in self.cases if u.session["label"] == label)


def upload(
    world: World, case: syn.SyntheticCase, who: str = "owner", label: str = "rois"
) -> Uploaded:
    """Upload the case's series and its RTSTRUCT (as ``who``, an owner or site admin)."""
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = world.client.post(f"{world.project_url}/sessions", files=files, headers=world.h(who))
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    collection = put_collection(world, session["id"], case.rtstruct_path.read_bytes(), who, label)
    return Uploaded(case, session, collection, who)


def put_collection(
    world: World, session: int, data: bytes, who: str, label: str, *, overwrite: bool = False
) -> Any:
    params = {"type": "RTSTRUCT", **({"overwrite": "true"} if overwrite else {})}
    r = world.client.put(
        f"{world.project_url}/sessions/{session}/collections/{label}",
        content=data,
        params=params,
        headers=world.h(who),
    )
    assert r.status_code in (200, 201), r.text
    return r.json()


def converted_world(world: World, root: Path) -> Converted:
    """Three subjects on three grids; the last collection uploaded by the site admin."""
    r = world.client.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    put_map(world, "liver-ct", VALUES)
    sizes = ((48, 40, 8), (44, 38, 8), (50, 42, 8))
    cases = []
    for n, size in enumerate(sizes):
        case = small_case(root / f"c{n}", 41 + n, size=size, patient=f"SUBJ{n + 1}")
        cases.append(upload(world, case, "admin" if n == 2 else "owner"))
    jobs = wait_for_jobs(world, len(cases))
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    return Converted(world, cases)


@pytest.fixture()
def converted(world: World, tmp_path: Path) -> Converted:
    return converted_world(world, tmp_path / "cases")


def create(c: Converted, who: str = "owner", **body: Any) -> Any:
    return c.world.client.post(c.datasets_url, json=body, headers=c.world.h(who))


def wait_ready(c: Converted, url: str, timeout_s: float = 180.0) -> dict[str, Any]:
    """Poll a dataset until it is ready or failed."""
    deadline = time.monotonic() + timeout_s
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = c.world.client.get(url, headers=c.world.h("member"))
        assert r.status_code == 200, r.text
        data = r.json()
        if data["state"] in DONE:
            return data
        time.sleep(0.2)
    raise AssertionError(f"the dataset did not finish in {timeout_s} s: {data}")


def download(c: Converted, dataset: dict[str, Any], fmt: str, who: str = "member") -> Any:
    r = c.world.client.get(dataset["download_urls"][fmt], headers=c.world.h(who))
    assert r.status_code == 200, r.text
    return r


def dicom_affine_ras(series_folder: Path) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The scan's voxel -> RAS affine, read straight from its DICOM headers."""
    lps, shape = dicom_voxel_to_lps(series_folder)
    return LPS_FROM_RAS @ lps, shape


def truth_volumes_ml(case: syn.SyntheticCase) -> dict[int, float]:
    """Per map value, the truth's voxels on the scan's grid times the voxel volume (mL)."""
    affine, shape = dicom_affine_ras(case.series.folder)
    labels, _ambiguous = truth_labels_ijk(affine, shape, truth_rois(case, VALUES))
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000
    return {v: int((labels == v).sum()) * voxel_ml for v in VALUES.values()}


def extract(blob: bytes, into: Path) -> Path:
    """Unpack a downloaded zip; the one folder it holds."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        roots = {n.split("/")[0] for n in names}
        assert len(roots) == 1, roots
        archive.extractall(into)
    return into / roots.pop()


# --- create -> ready, the manifest and the QA against the truth ------------------------


def test_a_dataset_is_frozen_from_the_models_conversions(converted: Converted) -> None:
    c = converted
    r = create(c, name="Abdomen", folds=3, dataset_id=501)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert r.headers["location"] == queued["url"] == f"{c.datasets_url}/Abdomen"
    assert queued["state"] in ("queued", "freezing", "ready") and queued["download_urls"] == {}
    data = wait_ready(c, queued["url"])
    assert data["state"] == "ready", data["error"]
    assert data["case_count"] == 3 and data["error"] is None and data["progress"] == 1.0
    assert set(data["download_urls"]) == {"nnunet", "monai", "msd"}
    manifest, qa = data["manifest"], data["qa"]
    assert manifest["name"] == "Abdomen" and manifest["dataset_id"] == 501
    assert manifest["resampled"] is False and manifest["spacing_mm"] is None
    assert {r["label"]: r["value"] for r in manifest["region_map"]["regions"]} == VALUES
    cases = {m["session"]: m for m in manifest["cases"]}
    assert set(cases) == {u.session["label"] for u in c.cases}
    assert len({m["fold"] for m in manifest["cases"]}) == 3  # one subject per fold
    for u in c.cases:
        m = cases[u.session["label"]]
        assert m["subject"] == u.case.series.identity.patient_id
        assert m["collection"] == "rois" and m["annotator"] == u.uploader
        assert m["series_instance_uid"] == u.case.series.series_instance_uid
        assert m["study_instance_uid"] == u.case.series.identity.study_instance_uid
        _affine, shape = dicom_affine_ras(u.case.series.folder)
        assert tuple(m["size_ijk"]) == shape  # the scan's own grid
        # Where each file came from: the derived files of the scan, by API path.
        scan = u.collection["scan"]["id"]
        assert m["mask"]["source"].endswith(
            f"/sessions/{u.session['id']}/scans/{scan}/resources/liver-ct/files/mask.nii.gz"
        )
        assert m["image"]["source"].endswith(f"/sessions/{u.session['id']}/scans/{scan}")
    # QA: every region in every case, its volume the truth's voxels times the voxel volume.
    assert qa["cases"] == 3 and qa["missing_regions"] == [] and qa["unexpected_values"] == []
    assert qa["unmatched_names"] == [] and qa["multiple_collections"] == []
    by_case = {m["name"]: c.by_session(m["session"]).case for m in manifest["cases"]}
    truths = {name: truth_volumes_ml(case) for name, case in by_case.items()}
    assert [r["name"] for r in qa["regions"]] == list(VALUES)
    for region in qa["regions"]:
        assert region["cases_with"] == region["cases_total"] == 3
        for v in region["volumes"]:
            expected = truths[v["case"]][region["map_value"]]
            # QA volumes are rounded to 0.1 µL (4 decimals of a mL).
            assert v["volume_ml"] == pytest.approx(expected, rel=1e-3, abs=5e-5)
    # Each region's picture is served as a PNG.
    assert set(data["qa_plots"]) == {str(v) for v in range(1, 8)}
    png = c.world.client.get(data["qa_plots"]["1"], headers=c.world.h("collab"))
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    listed = c.world.client.get(c.datasets_url, headers=c.world.h("collab")).json()
    assert [d["name"] for d in listed] == ["Abdomen"] and "manifest" not in listed[0]


def test_the_nnunet_and_monai_downloads_hold_the_right_labels(
    converted: Converted, tmp_path: Path
) -> None:
    c = converted
    data = wait_ready(c, create(c, name="Phantom", folds=2, dataset_id=502).json()["url"])
    assert data["state"] == "ready", data["error"]
    r = download(c, data, "nnunet")
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="Dataset502_Phantom.zip"' in r.headers["content-disposition"]
    root = extract(r.content, tmp_path / "nnunet")
    assert root.name == "Dataset502_Phantom"
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"} and dataset["numTraining"] == 3
    assert dataset["labels"] == {"background": 0, **{n: i + 1 for i, n in enumerate(VALUES)}}
    to_label = {int(k): v for k, v in dataset["segmap"]["map_value_to_nnunet_value"].items()}
    back = np.zeros(8, dtype=np.uint16)
    for map_value, label in to_label.items():
        back[label] = map_value
    names = {m["name"]: m for m in data["manifest"]["cases"]}
    assert {p.name for p in (root / "labelsTr").iterdir()} == {f"{n}.nii.gz" for n in names}
    for name, m in names.items():
        case = c.by_session(m["session"]).case
        label = nib.load(str(root / "labelsTr" / f"{name}.nii.gz"))
        image = nib.load(str(root / "imagesTr" / f"{name}_0000.nii.gz"))
        assert np.allclose(image.affine, label.affine) and image.shape == label.shape
        mapped = tmp_path / f"{name}-map-values.nii.gz"
        nib.save(nib.Nifti1Image(back[np.asarray(label.dataobj)], label.affine), mapped)
        assert_mask_matches_truth(mapped, case.series.folder, truth_rois(case, VALUES))
    splits = json.loads((root / "splits_final.json").read_text())
    assert len(splits) == 2 and sorted(sum((s["val"] for s in splits), [])) == sorted(names)

    monai_root = extract(download(c, data, "monai").content, tmp_path / "monai")
    from monai.data import load_decathlon_datalist

    training = load_decathlon_datalist(str(monai_root / "datalist.json"), True, "training")
    assert len(training) == 3 and {item["fold"] for item in training} == {0, 1}
    for item in training:
        assert Path(item["image"]).is_file() and Path(item["label"]).is_file()
    msd = zipfile.ZipFile(io.BytesIO(download(c, data, "msd", who="collab").content))
    assert "Task502_Phantom/dataset.json" in msd.namelist()


# nnU-Net reads the downloaded bytes, which do not depend on the database: one run (on
# SQLite, given directly in place of the parametrised ``backend`` fixture) is enough.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_nnunet_verifies_and_plans_a_downloaded_dataset(
    converted: Converted, tmp_path: Path, backend: str
) -> None:
    assert converted.world.api.app.state.settings.database_url is None  # SQLite it is
    c = converted
    data = wait_ready(
        c, create(c, name="Planned", resampled=True, folds=3, dataset_id=503).json()["url"]
    )
    assert data["state"] == "ready", data["error"]
    assert data["manifest"]["spacing_mm"] == list(SPACING)
    raw = tmp_path / "nnUNet_raw"
    extract(download(c, data, "nnunet").content, raw)
    env = dict(
        os.environ,
        nnUNet_raw=str(raw),
        nnUNet_preprocessed=str(tmp_path / "pre"),
        nnUNet_results=str(tmp_path / "results"),
        OMP_NUM_THREADS="1",
    )
    tool = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    done = subprocess.run(
        [str(tool), "-d", "503", "--verify_dataset_integrity", "--no_pp", "-npfp", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "verify_dataset_integrity Done" in done.stdout
    plans = json.loads((tmp_path / "pre" / "Dataset503_Planned" / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["spacing"] == [SPACING[2], SPACING[1], SPACING[0]]


# --- frozen: the same bytes, even after new annotations --------------------------------


def test_downloads_are_identical_even_after_a_new_annotation_is_converted(
    converted: Converted, tmp_path: Path
) -> None:
    c, world = converted, converted.world
    data = wait_ready(c, create(c, name="Frozen", folds=2).json()["url"])
    assert data["state"] == "ready", data["error"]
    first = {fmt: download(c, data, fmt).content for fmt in ("nnunet", "monai")}
    assert download(c, data, "nnunet").content == first["nnunet"]
    # The dataset's files are hard links to the conversion's, not copies.
    storage = world.api.app.state.storage
    u = c.cases[0]
    scan = u.collection["scan"]["id"]
    base = f"{world.project_url}/sessions/{u.session['id']}/scans/{scan}/resources"
    folder = next(
        f
        for f in world.client.get(base, headers=world.h("owner")).json()
        if f["label"] == "liver-ct"
    )
    mask = next(f for f in folder["files"] if f["name"] == "mask.nii.gz")
    frozen_mask = storage.local_path(f"datasets/{data['id']}/files/{mask['sha256'][:2]}")
    frozen_mask = frozen_mask / f"{mask['sha256']}.nii.gz"
    from sqlalchemy import select

    from segmap.server.db.imaging import DerivedFile

    with world.api.app.state.database.session() as db:
        key = db.scalar(select(DerivedFile.storage_key).where(DerivedFile.sha256 == mask["sha256"]))
    assert os.stat(frozen_mask).st_ino == os.stat(storage.local_path(key)).st_ino
    # A new annotation of that scan: the Liver only. The job replaces the scan's masks.
    liver_only = tmp_path / "liver.dcm"
    syn.write_rtstruct(
        liver_only, u.case.series, tuple(r for r in u.case.rois if r.name == "Liver"), seed=77
    )
    put_collection(world, u.session["id"], liver_only.read_bytes(), "owner", "rois", overwrite=True)
    jobs = wait_for_jobs(world, 4)
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    assert not storage.local_path(key).exists()  # the conversion's old files are gone
    for fmt, blob in first.items():
        assert download(c, data, fmt).content == blob
    # A dataset frozen now takes the new mask: the old one is the earlier dataset's own.
    later = wait_ready(c, create(c, name="Later", folds=2).json()["url"])
    by_session = {m["session"]: m for m in later["manifest"]["cases"]}
    assert by_session[u.session["label"]]["mask"]["sha256"] != mask["sha256"]
    body = next(r for r in later["qa"]["regions"] if r["name"] == "Body")
    assert body["cases_with"] == 2  # the new annotation has no Body


# --- choosing cases, and refusals ------------------------------------------------------


def test_filters_choose_cases_by_subject_session_collection_and_annotator(
    converted: Converted,
) -> None:
    c = converted
    admin_session = c.cases[2].session["label"]
    for name, case_filter, expected in (
        ("BySubject", {"subject": ["SUBJ1", "SUBJ2"]}, {0, 1}),
        ("ByAnnotator", {"annotator": "owner"}, {0, 1}),
        ("BySession", {"session": [c.cases[1].session["label"], admin_session]}, {1, 2}),
        ("ByCollection", {"collection": "roi*", "subject": "SUBJ[13]"}, {0, 2}),
    ):
        r = create(c, name=name, filter=case_filter, folds=2)
        assert r.status_code == 202, r.text
        data = wait_ready(c, r.json()["url"])
        assert data["state"] == "ready", data["error"]
        assert data["filter"] == {
            k: [v] if isinstance(v, str) else v for k, v in case_filter.items()
        }
        got = {m["session"] for m in data["manifest"]["cases"]}
        assert got == {c.cases[i].session["label"] for i in expected}, name
    # The admin's one case is one subject, which cannot fill two folds: refused, saying so.
    data = wait_ready(c, create(c, name="ByAdmin", filter={"annotator": "admin"}).json()["url"])
    assert data["state"] == "failed" and "1 subject" in data["error"], data
    data = wait_ready(c, create(c, name="Folds", folds=5).json()["url"])
    assert data["state"] == "failed" and "at most 3 folds ('folds')" in data["error"], data
    r = create(c, name="Nobody", filter={"subject": "NOBODY"})
    data = wait_ready(c, r.json()["url"])
    assert data["state"] == "failed" and "the filter keeps none" in data["error"], data
    r = c.world.client.get(data["url"] + "/download?format=nnunet", headers=c.world.h("member"))
    assert r.status_code == 409 and "failed" in r.json()["detail"], r.text


def test_bad_input_is_refused_naming_the_field(world: World) -> None:
    url = f"{world.project_url}/models/liver-ct/datasets"
    owner = world.h("owner")
    r = world.client.post(url, json={"name": "First"}, headers=owner)
    assert r.status_code == 422 and "no region map" in r.json()["detail"], r.text
    put_map(world, "liver-ct", VALUES)
    for body, where in (
        ({"name": "has space"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "A", "folds": 1}, "folds"),
        ({"name": "A", "dataset_id": 1000}, "dataset_id"),
        ({"name": "A", "seed": -1}, "seed"),
        ({"name": "A", "filter": {"colour": "red"}}, "filter"),
        ({"name": "A", "filter": {"subject": [3]}}, "filter"),
    ):
        r = world.client.post(url, json=body, headers=owner)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == where and where in r.json()["detail"], r.text
    for body, where in (({"folds": 3}, "name"), ({"name": "A", "colour": 1}, "colour")):
        r = world.client.post(url, json=body, headers=owner)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == where, r.text
    assert world.client.post(url, json={"name": "Taken"}, headers=owner).status_code == 202
    r = world.client.post(url, json={"name": "TAKEN"}, headers=owner)
    assert r.status_code == 409 and "already has a dataset named" in r.json()["detail"], r.text
    r = world.client.get(f"{url}/Taken/download?format=zip", headers=owner)
    assert r.status_code == 422 and r.json()["field"] == "format", r.text
    r = world.client.get(f"{url}/Missing", headers=owner)
    assert r.status_code == 404 and "no dataset 'Missing'" in r.json()["detail"], r.text
    r = world.client.post(
        f"{world.project_url}/models/nope/datasets", json={"name": "A"}, headers=owner
    )
    assert r.status_code == 404, r.text


def test_who_may_create_read_and_download(world: World) -> None:
    put_map(world, "liver-ct", VALUES)
    url = f"{world.project_url}/models/liver-ct/datasets"
    for who, status in (("member", 403), ("collab", 403), ("outsider", 403), ("anon", 401)):
        r = world.client.post(url, json={"name": f"By{who}"}, headers=world.h(who))
        assert r.status_code == status, (who, r.text)
        if who == "outsider":  # the project's own refusal, as for every URL naming it
            assert "not a member of project 'P'" in r.json()["detail"], r.text
    r = world.client.post(url, json={"name": "Owned"}, headers=world.h("owner"))
    assert r.status_code == 202, r.text
    assert (
        world.client.post(url, json={"name": "Admins"}, headers=world.h("admin")).status_code == 202
    )
    for who in ("member", "collab", "admin"):
        r = world.client.get(url, headers=world.h(who))
        assert r.status_code == 200 and {d["name"] for d in r.json()} == {"Owned", "Admins"}
        assert world.client.get(f"{url}/Owned", headers=world.h(who)).status_code == 200
    # An outsider is told what the model's own URL tells them (docs/security.md): not a
    # member (403), the same answer for a dataset that exists and one that does not.
    model = world.client.get(world.model_url, headers=world.h("outsider"))
    assert model.status_code == 403, model.text
    for path in (
        "",
        "/Owned",
        "/Owned/download?format=nnunet",
        "/Owned/qa/label_001.png",
        "/Missing",
    ):
        r = world.client.get(url + path, headers=world.h("outsider"))
        assert r.status_code == 403 and r.json() == model.json(), (path, r.text)
        assert world.client.get(url + path).status_code == 401
    r = world.client.delete(f"{url}/Owned", headers=world.h("outsider"))
    assert r.status_code == 403 and r.json() == model.json(), r.text
    r = world.client.get("/api/v1/projects/NOPE/models/liver-ct/datasets", headers=world.h("owner"))
    assert r.status_code == 404 and "no project 'NOPE'" in r.json()["detail"], r.text
    assert world.client.delete(f"{url}/Owned", headers=world.h("member")).status_code == 403
    assert world.client.delete(f"{url}/Owned", headers=world.h("owner")).status_code == 204
    assert world.client.get(f"{url}/Owned", headers=world.h("member")).status_code == 404
