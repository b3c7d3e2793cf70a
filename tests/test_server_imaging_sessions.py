"""Imaging session upload and listing through the REST API, on SQLite and PostgreSQL.

DICOM comes from ``segmap.testing`` (tests/imaging_data.py); expected UIDs,
counts and dates are the ones written there.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import func, select

from imaging_data import multipart, sha256, write_phantom_rtstruct, write_study, zip_bytes
from segmap.server.db.imaging import Instance
from server_fixtures import TEST_MAX_UPLOAD, World

SESSIONS = "/api/v1/projects/P/sessions"


def _upload(world: World, paths: list[Path], who: str = "owner", **kw: Any) -> Any:
    return world.client.post(SESSIONS, files=multipart(paths, **kw), headers=world.h(who))


def _instance_count(world: World) -> int:
    with world.api.app.state.database.session() as db:
        return int(db.scalar(select(func.count()).select_from(Instance)) or 0)


def _stored_objects(world: World) -> list[Path]:
    root = world.api.app.state.storage.objects / "scans"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_files_are_grouped_into_sessions_by_study_and_scans_by_series(
    world: World, tmp_path: Path
) -> None:
    a = write_study(tmp_path, seed=1, patient_id="PAT-A", series_numbers=(2, 3))
    b = write_study(tmp_path, seed=2, patient_id="PAT-B", series_numbers=(5,), slices=3)
    # Mix the files so grouping cannot rely on upload order.
    files = a.files + b.files
    random.Random(0).shuffle(files)
    r = _upload(world, files)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rejected"] == []
    by_study = {s["study_instance_uid"]: s for s in body["sessions"]}
    assert set(by_study) == {a.identity.study_instance_uid, b.identity.study_instance_uid}
    scans_a = {
        s["series_instance_uid"]: s for s in by_study[a.identity.study_instance_uid]["scans"]
    }
    assert set(scans_a) == {s.series_instance_uid for s in a.series}
    for series in a.series:
        entry = scans_a[series.series_instance_uid]
        assert entry["slice_count"] == len(series.files) == 4
        assert entry["added"] == 4 and entry["already_stored"] == 0
    scans_b = by_study[b.identity.study_instance_uid]["scans"]
    assert [s["series_instance_uid"] for s in scans_b] == [b.series[0].series_instance_uid]
    assert scans_b[0]["slice_count"] == 3

    listed = world.client.get(SESSIONS, headers=world.h("owner"))
    assert listed.status_code == 200
    sessions = {s["study_instance_uid"]: s for s in listed.json()}
    sa = sessions[a.identity.study_instance_uid]
    assert sa["subject"] == "PAT-A"
    assert sa["date"] == "2024-01-02"  # StudyIdentity's StudyDate 20240102
    assert [
        (s["series_number"], s["modality"], s["description"], s["slice_count"]) for s in sa["scans"]
    ] == [
        (2, "CT", "Synthetic CT 2", 4),
        (3, "CT", "Synthetic CT 3", 4),
    ]
    detail = world.client.get(f"{SESSIONS}/{sa['id']}", headers=world.h("owner")).json()
    assert detail["collections"] == []
    assert len(detail["scans"]) == 2
    # The study UID names the session as well as its id does.
    by_uid = world.client.get(
        f"{SESSIONS}/{a.identity.study_instance_uid}", headers=world.h("owner")
    )
    assert by_uid.status_code == 200 and by_uid.json()["id"] == sa["id"]
    scan_uid = a.series[1].series_instance_uid
    scan = world.client.get(f"{SESSIONS}/{sa['id']}/scans/{scan_uid}", headers=world.h("owner"))
    assert scan.status_code == 200 and scan.json()["series_number"] == 3


def test_same_instance_uploaded_twice_is_stored_once(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path, seed=3, patient_id="TWICE")
    files = study.files
    first = _upload(world, files)
    assert first.status_code == 201
    objects_before = sorted(_stored_objects(world))
    again = _upload(world, files + files[:2])  # and two repeats inside one upload
    assert again.status_code == 200, again.text
    scan = again.json()["sessions"][0]["scans"][0]
    assert (scan["added"], scan["already_stored"], scan["slice_count"]) == (0, 4, 4)
    assert again.json()["rejected"] == []
    assert _instance_count(world) == 4
    assert sorted(_stored_objects(world)) == objects_before
    stored = sorted(p.read_bytes() for p in objects_before)
    assert stored == sorted(f.read_bytes() for f in files)


def test_same_uid_with_different_bytes_is_refused_and_the_stored_copy_kept(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=4, patient_id="EDIT")
    original = study.files[0]
    assert _upload(world, study.files).status_code == 201
    edited = tmp_path / "edited.dcm"
    ds = pydicom.dcmread(original)
    ds.SeriesDescription = "edited by hand"
    ds.save_as(edited)
    r = _upload(world, [edited])
    assert r.status_code == 422, r.text
    assert [x["file"] for x in r.json()["rejected"]] == ["edited.dcm"]
    assert "different content" in r.json()["rejected"][0]["reason"]
    with world.api.app.state.database.session() as db:
        row = db.scalar(select(Instance).where(Instance.sop_instance_uid == ds.SOPInstanceUID))
        assert row is not None and row.sha256 == sha256(original.read_bytes())


def test_damaged_and_non_dicom_files_are_named_and_the_rest_kept(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=5, patient_id="DAMAGE", slices=5)
    good = study.files[1:]
    data = study.files[0].read_bytes()
    cut_pixels = tmp_path / "cut-in-pixels.dcm"
    cut_pixels.write_bytes(data[: len(data) - 200])  # pixel data is the last element
    cut_header = tmp_path / "cut-in-header.dcm"
    cut_header.write_bytes(data[:400])
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image at all\n")
    r = _upload(world, [cut_pixels, *good, notes, cut_header])
    assert r.status_code == 201, r.text
    body = r.json()
    reasons = {x["file"]: x["reason"] for x in body["rejected"]}
    assert set(reasons) == {"cut-in-pixels.dcm", "cut-in-header.dcm", "notes.txt"}
    assert "damaged" in reasons["cut-in-pixels.dcm"]
    assert "damaged" in reasons["cut-in-header.dcm"]
    assert "not a DICOM file" in reasons["notes.txt"]
    assert body["sessions"][0]["scans"][0]["slice_count"] == 4
    assert _instance_count(world) == 4


def test_upload_with_nothing_storable_is_422_with_the_reasons(world: World, tmp_path: Path) -> None:
    notes = tmp_path / "readme.txt"
    notes.write_text("hello")
    r = _upload(world, [notes])
    assert r.status_code == 422
    assert r.json()["rejected"][0]["file"] == "readme.txt"
    assert "no file of the upload was stored" in r.json()["detail"]


def test_zip_upload_raw_and_as_a_part_with_hostile_names(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path, seed=6, patient_id="ZIPPED", slices=4)
    entries = {
        "study/a.dcm": study.files[0].read_bytes(),
        "../../escaped.dcm": study.files[1].read_bytes(),
        "/abs/b.dcm": study.files[2].read_bytes(),
        "notes/readme.txt": b"hello",
    }
    r = world.client.post(
        SESSIONS,
        content=zip_bytes(entries),
        headers={**world.h("owner"), "Content-Type": "application/zip"},
        params={"name": "study.zip"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["sessions"][0]["scans"][0]["added"] == 3
    assert r.json()["rejected"] == [
        {"file": "study.zip/notes/readme.txt", "reason": r.json()["rejected"][0]["reason"]}
    ]
    # Entry names never became paths: nothing was written outside the storage folder.
    assert not list(tmp_path.parent.rglob("escaped.dcm"))
    assert not Path("/abs/b.dcm").exists()
    # The last slice in a zip sent as one part of a multipart upload, with a loose file.
    inner = zip_bytes({"d.dcm": study.files[3].read_bytes()})
    r = world.client.post(
        SESSIONS,
        files=[
            ("files", ("more.zip", inner, "application/zip")),
            ("files", ("again.dcm", study.files[0].read_bytes(), "application/dicom")),
        ],
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    scan = r.json()["sessions"][0]["scans"][0]
    assert (scan["added"], scan["already_stored"], scan["slice_count"]) == (1, 1, 4)


def test_zip_limits_stop_bombs_and_nested_archives(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path, seed=7, patient_id="BOMB", slices=1)
    budget = 4 * TEST_MAX_UPLOAD  # unpacked bytes allowed per upload: 4x the file limit
    pad = TEST_MAX_UPLOAD - 64 * 1024  # four pads fit in the budget, the fifth does not
    head = study.files[0].read_bytes()  # a valid header, so entries pass the header probe

    def padded(size: int) -> bytes:
        return head + bytes(size - len(head))

    entries = {
        "slice.dcm": head,
        "inner.zip": zip_bytes({"x.dcm": head}),
        "big.bin": padded(TEST_MAX_UPLOAD + 1),  # past the per-file limit
    }
    entries |= {f"pad{n}.bin": padded(pad) for n in range(5)}
    body = zip_bytes(entries)
    assert len(body) < TEST_MAX_UPLOAD < budget  # the archive is small; unpacking is big
    r = world.client.post(
        SESSIONS,
        content=body,
        headers={**world.h("owner"), "Content-Type": "application/zip"},
        params={"name": "bomb.zip"},
    )
    assert r.status_code == 201, r.text
    reasons = {x["file"].removeprefix("bomb.zip/"): x["reason"] for x in r.json()["rejected"]}
    assert set(reasons) == {"inner.zip", "big.bin", *(f"pad{n}.bin" for n in range(5))}
    assert "zip inside a zip" in reasons["inner.zip"]
    assert f"more than the limit of {TEST_MAX_UPLOAD} bytes per file" in reasons["big.bin"]
    for n in range(4):  # unpacked (within the budget), then refused for what they hold
        assert "different content" in reasons[f"pad{n}.bin"], reasons[f"pad{n}.bin"]
    assert f"unpack to more than {budget} bytes" in reasons["pad4.bin"]
    assert r.json()["sessions"][0]["scans"][0]["added"] == 1
    assert list(world.api.app.state.storage.staging.iterdir()) == []


def test_rtstruct_sent_with_images_is_refused_with_the_collection_upload_to_use(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=8, patient_id="RT")
    rt = tmp_path / "rois.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    r = _upload(world, [*study.files, rt])
    assert r.status_code == 201
    session_id = r.json()["sessions"][0]["id"]
    [refused] = r.json()["rejected"]
    assert refused["file"] == "rois.dcm"
    assert f"/api/v1/projects/P/sessions/{session_id}/collections/" in refused["reason"]
    assert "type=RTSTRUCT" in refused["reason"]


def test_readers_list_but_only_owners_and_admins_upload(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path, seed=9, patient_id="PERM", slices=2)
    for who, status in (("anon", 401), ("outsider", 403), ("collab", 403), ("member", 403)):
        r = _upload(world, study.files, who=who)
        assert r.status_code == status, (who, r.text)
        assert "detail" in r.json()
    assert _instance_count(world) == 0
    assert _upload(world, study.files, who="admin").status_code == 201
    for who in ("owner", "member", "collab", "admin"):
        listed = world.client.get(SESSIONS, headers=world.h(who))
        assert listed.status_code == 200 and len(listed.json()) == 1
        sid = listed.json()[0]["id"]
        assert world.client.get(f"{SESSIONS}/{sid}", headers=world.h(who)).status_code == 200
    assert world.client.get(SESSIONS, headers=world.h("outsider")).status_code == 403
    assert world.client.get(SESSIONS, headers=world.h("anon")).status_code == 401
    assert world.client.get(f"{SESSIONS}/999", headers=world.h("owner")).status_code == 404
    assert (
        world.client.get("/api/v1/projects/NOPE/sessions", headers=world.h("owner")).status_code
        == 404
    )


def test_a_part_over_the_limit_is_refused_by_name_and_the_rest_kept(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=10, patient_id="LIMIT", slices=2)
    huge = bytes(128) + b"DICM" + bytes(TEST_MAX_UPLOAD)  # passes the first-bytes check
    files = [
        ("files", ("huge.dcm", huge, "application/dicom")),
        *multipart(study.files),
    ]
    r = world.client.post(SESSIONS, files=files, headers=world.h("owner"))
    assert r.status_code == 201, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "huge.dcm"
    assert f"limit of {TEST_MAX_UPLOAD} bytes" in refused["reason"]
    assert r.json()["sessions"][0]["scans"][0]["added"] == 2
    assert list(world.api.app.state.storage.staging.iterdir()) == []


def test_one_dicom_file_as_the_raw_body(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path, seed=13, patient_id="RAW", slices=1)
    r = world.client.post(
        SESSIONS,
        content=study.files[0].read_bytes(),
        headers={**world.h("owner"), "Content-Type": "application/dicom"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["sessions"][0]["scans"][0]["slice_count"] == 1
    too_big = world.client.post(
        SESSIONS,
        content=bytes(TEST_MAX_UPLOAD + 1),
        headers={**world.h("owner"), "Content-Type": "application/dicom"},
    )
    assert too_big.status_code == 413
