"""STOW-RS through segmap's real server, driven by dicomweb-client, on SQLite and PostgreSQL.

Stored images join sessions and scans as an upload does; RTSTRUCT and SEG become ROI
collections and run the automated model, whose mask is judged voxel for voxel against
the independent truth. Refusals say why in FailedSOPSequence and store nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dicomweb_helpers import client_for, raw_instances
from imaging_data import write_seg, write_study
from jobs_helpers import assert_mask_matches_truth, small_case, truth_rois
from segmap import testing as syn
from segmap.server.db.dicomweb import DicomwebInstance
from segmap.server.db.imaging import RoiCollection
from server_fixtures import PASSWORD, TEST_MAX_UPLOAD, ThreadedServer, World
from test_jobs_api import put_map, wait_for_jobs

FAILED, REFERENCED, FAILURE_REASON = "00081198", "00081199", "00081197"


def _read(paths: list[Path]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in paths]


def _body(parts: list[bytes], boundary: str, *, lead: bytes = b"\r\n") -> bytes:
    chunks = [lead]
    for data in parts:
        chunks += [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            data,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def _post(url: str, headers: dict[str, str], body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        url, data=body, headers={**headers, "Content-Type": content_type}, timeout=60
    )


def _count(world: World, table: Any) -> int:
    with world.api.app.state.database.session() as db:
        return int(db.scalar(select(func.count()).select_from(table)) or 0)


def test_images_and_annotations_are_stored_and_run_the_model(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    r = world.client.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    put_map(world, "liver-ct", syn.PHANTOM_REGION_VALUES)
    case = small_case(tmp_path / "case", 31)
    client = client_for(threaded_server.url, world.h("owner"))
    images = _read(case.series.files)
    answer = client.store_instances(images)
    assert sorted(i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence) == sorted(
        d.SOPInstanceUID for d in images
    )
    assert "FailedSOPSequence" not in answer
    assert answer.RetrieveURL.endswith(f"/studies/{images[0].StudyInstanceUID}")

    rt = pydicom.dcmread(case.rtstruct_path)
    rt.SeriesDescription = "Annotator A"
    rt.save_as(tmp_path / "rt.dcm")
    answer = client.store_instances([pydicom.dcmread(tmp_path / "rt.dcm")])
    assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [rt.SOPInstanceUID]

    sessions = world.client.get("/api/v1/projects/P/sessions", headers=world.h("member")).json()
    assert [s["subject"] for s in sessions] == [images[0].PatientID]
    assert [sc["slice_count"] for sc in sessions[0]["scans"]] == [len(images)]
    session_url = f"/api/v1/projects/P/sessions/{sessions[0]['id']}"
    session = world.client.get(session_url, headers=world.h("member")).json()
    [collection] = session["collections"]
    assert collection["label"] == "Annotator A" and collection["type"] == "RTSTRUCT"

    [job] = wait_for_jobs(world, 1)
    assert job["state"] == "succeeded" and job["trigger"] == "automation", job
    base = f"{session_url}/scans/{collection['scan']['id']}/resources/liver-ct/files"
    mask = world.client.get(f"{base}/mask.nii.gz", headers=world.h("member"))
    assert mask.status_code == 200
    assert_mask_matches_truth(mask.content, case.series.folder, truth_rois(case), tmp_path)

    # Sent again, the same instances are stored once and answered as stored.
    before = _count(world, DicomwebInstance)
    again = client.store_instances(images[:2])
    assert len(again.ReferencedSOPSequence) == 2 and _count(world, DicomwebInstance) == before
    again = client.store_instances([pydicom.dcmread(tmp_path / "rt.dcm")])
    assert len(again.ReferencedSOPSequence) == 1 and _count(world, RoiCollection) == 1


def test_each_new_seg_series_is_a_new_collection(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    study = write_study(tmp_path / "d", seed=41, patient_id="SEGS", series_numbers=(2,))
    client = client_for(threaded_server.url, world.h("owner"))
    client.store_instances(_read(study.files))
    for n in range(2):  # OHIF saves each edit as a new series with the same description
        seg = pydicom.dcmread(write_seg(tmp_path / f"seg{n}.dcm", study.series[0], ["Liver"]))
        seg.SeriesDescription = "Liver draft"
        answer = client.store_instances([seg])
        assert len(answer.ReferencedSOPSequence) == 1
    sessions = world.client.get("/api/v1/projects/P/sessions", headers=world.h("owner")).json()
    session_url = f"/api/v1/projects/P/sessions/{sessions[0]['id']}"
    session = world.client.get(session_url, headers=world.h("owner")).json()
    labels = sorted(c["label"] for c in session["collections"])
    assert labels == ["Liver draft", "Liver draft (2)"]
    found = client.search_for_series(search_filters={"Modality": "SEG"})
    assert len(found) == 2


def test_raw_multipart_bodies_and_bytes_retrieved_as_sent(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    study = write_study(tmp_path / "d", seed=43, patient_id="RAW", series_numbers=(2,))
    data = [p.read_bytes() for p in study.files]
    root = f"{threaded_server.url}/dicomweb/projects/P"
    owner = world.h("owner")
    for i, content_type in enumerate(
        [
            'multipart/related; type="application/dicom"; boundary="b0und"',
            "multipart/related; type=application/dicom; boundary=b0und",
        ]
    ):
        r = _post(f"{root}/studies", owner, _body(data[i * 2 : i * 2 + 2], "b0und"), content_type)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/dicom+json"
        assert len(r.json()[REFERENCED]["Value"]) == 2
    client = client_for(threaded_server.url, owner)
    series = study.series[0]
    parts = raw_instances(client, f"{root}/studies/{study.identity.study_instance_uid}/series/"
                                  f"{series.series_instance_uid}")  # fmt: skip
    assert sorted(parts) == sorted(data)


def test_refusals_say_why_and_store_nothing(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    root = f"{threaded_server.url}/dicomweb/projects/P"
    owner = world.h("owner")
    held = write_study(tmp_path / "held", seed=45, patient_id="HELD", series_numbers=(2,))
    client = client_for(threaded_server.url, owner)
    client.store_instances(_read(held.files))
    elsewhere = write_study(tmp_path / "x", seed=46, patient_id="ELSEWHERE", series_numbers=(2,))
    seg = write_seg(tmp_path / "seg.dcm", elsewhere.series[0], ["Liver"])
    stored = _count(world, DicomwebInstance)
    related = 'multipart/related; type="application/dicom"; boundary=xyz'

    r = _post(f"{root}/studies", owner, _body([seg.read_bytes()], "xyz"), related)
    assert r.status_code == 409, r.text
    [failed] = r.json()[FAILED]["Value"]
    assert failed[FAILURE_REASON]["Value"] == [0x0110]
    assert elsewhere.series[0].series_instance_uid in failed["00000902"]["Value"][0]
    assert failed["00081155"]["Value"] == [pydicom.dcmread(seg).SOPInstanceUID]
    assert elsewhere.series[0].series_instance_uid in r.headers["warning"]

    good = elsewhere.files[0].read_bytes()
    r = _post(f"{root}/studies", owner, _body([good, b"not dicom at all"], "xyz"), related)
    assert r.status_code == 202, r.text
    assert len(r.json()[REFERENCED]["Value"]) == 1
    [failed] = r.json()[FAILED]["Value"]
    assert failed[FAILURE_REASON]["Value"] == [0xC000]
    stored += 1

    other_study = f"{root}/studies/{held.identity.study_instance_uid}"
    r = _post(other_study, owner, _body([elsewhere.files[1].read_bytes()], "xyz"), related)
    assert r.status_code == 409
    assert r.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xA900]

    cut = _body([elsewhere.files[2].read_bytes()], "xyz")[:-9]  # no closing boundary
    r = _post(f"{root}/studies", owner, cut, related)
    assert r.status_code == 400 and "closing boundary" in r.json()["detail"]
    r = _post(f"{root}/studies", owner, b"{}", "application/json")
    assert r.status_code == 415
    json_parts = related.replace("application/dicom", "application/dicom+json")
    r = _post(f"{root}/studies", owner, _body([b"{}"], "xyz"), json_parts)
    assert r.status_code == 415 and "dicom+json" in r.json()["detail"]
    too_big = _body([good, b"x" * (TEST_MAX_UPLOAD + 1)], "xyz")  # first part done, then over
    r = _post(f"{root}/studies", owner, too_big, related)
    assert r.status_code == 413, r.text
    assert _count(world, DicomwebInstance) == stored
    assert _count(world, RoiCollection) == 0
    # parts are written into staging files as they arrive: a refused body leaves none
    assert list(threaded_server.app.state.storage.staging.iterdir()) == []


@pytest.mark.parametrize(("who", "status"), [("anon", 401), ("member", 403), ("collab", 403)])
def test_only_uploaders_may_store(
    world: World, threaded_server: ThreadedServer, tmp_path: Path, who: str, status: int
) -> None:
    study = write_study(tmp_path / "d", seed=47, patient_id="NOPE", series_numbers=(2,))
    related = 'multipart/related; type="application/dicom"; boundary=xyz'
    url = f"{threaded_server.url}/dicomweb/projects/P/studies"
    r = _post(url, world.h(who), _body([study.files[0].read_bytes()], "xyz"), related)
    assert r.status_code == status, r.text
    assert _count(world, DicomwebInstance) == 0


def test_stores_with_ambient_credentials_must_come_from_this_site(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    study = write_study(tmp_path / "d", seed=48, patient_id="CSRF", series_numbers=(2,))
    related = 'multipart/related; type="application/dicom"; boundary=xyz'
    url = f"{threaded_server.url}/dicomweb/projects/P/studies"
    body = _body([study.files[0].read_bytes()], "xyz")
    session = requests.Session()
    session.auth = ("owner", PASSWORD)
    evil = {"Content-Type": related, "Origin": "https://evil.example"}
    r = session.post(url, data=body, headers=evil, timeout=60)
    assert r.status_code == 403, r.text
    assert _count(world, DicomwebInstance) == 0
    r = session.post(url, data=body, headers={"Content-Type": related}, timeout=60)  # a CLI tool
    assert r.status_code == 200, r.text


def test_stores_with_the_session_cookie_need_this_sites_origin_or_the_csrf_header(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path / "d", seed=49, patient_id="COOKIE", series_numbers=(2,))
    related = 'multipart/related; type="application/dicom"; boundary=xyz'
    files = [p.read_bytes() for p in study.files]
    with TestClient(world.api.app, base_url="http://segmap.test") as browser:
        form = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = browser.post(
            "/login",
            data={"username": "owner", "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert r.status_code == 303
        url = "/dicomweb/projects/P/studies"
        bare = browser.post(url, content=_body(files[:1], "xyz"), headers={"Content-Type": related})
        assert bare.status_code == 403, bare.text  # a cookie alone could be a forged request
        assert _count(world, DicomwebInstance) == 0
        same_site = {"Content-Type": related, "Origin": "http://segmap.test"}
        r = browser.post(url, content=_body(files[:1], "xyz"), headers=same_site)
        assert r.status_code == 200, r.text  # OHIF served by segmap itself
        csrf = browser.get("/projects").text
        found = re.search(r'name="csrf_token" value="([^"]+)"', csrf)
        assert found is not None
        with_header = {"Content-Type": related, "X-CSRF-Token": found.group(1)}
        r = browser.post(url, content=_body(files[1:2], "xyz"), headers=with_header)
        assert r.status_code == 200, r.text
        assert _count(world, DicomwebInstance) == 2
