"""Ordinary bad input to the imaging uploads is refused with a reason, never a 500 (issue 9).

Through the real app: multipart bodies that end before their closing boundary (point 4),
DICOM header numbers no database column holds (point 4: SQLite and PostgreSQL), and
UIDs that break the UID grammar of PS3.5 9.1 (point 5), for images and ROI collections.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from sqlalchemy import func, select

from imaging_data import write_phantom_rtstruct, write_study
from segmap.server.db.imaging import Instance, RoiCollection
from server_fixtures import World

SESSIONS = "/api/v1/projects/P/sessions"
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _edited(path: Path, **raw: bytes) -> bytes:
    """The file at ``path`` with the given attributes' raw values (unvalidated bytes)."""
    ds = pydicom.dcmread(path)
    for keyword, value in raw.items():
        tag = Tag(keyword)
        vr = pydicom.datadict.dictionary_VR(tag)
        padded = value + (b" " if len(value) % 2 else b"")
        ds[tag] = RawDataElement(tag, vr, len(padded), padded, 0, ds.is_implicit_VR, True)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _staging(world: World) -> list[str]:
    return [p.name for p in world.api.app.state.storage.staging.iterdir()]


def _count(world: World, table: Any) -> int:
    with world.api.app.state.database.session() as db:
        return int(db.scalar(select(func.count()).select_from(table)) or 0)


def _post_files(world: World, files: dict[str, bytes]) -> Any:
    parts = [("files", (name, data, "application/dicom")) for name, data in files.items()]
    return world.client.post(SESSIONS, files=parts, headers=world.h("owner"))


# --------------------------------------------------------------------------- multipart


def _multipart_head(name: str) -> bytes:
    return (
        f'--B\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
    ).encode()


@SQLITE_ONLY
@pytest.mark.parametrize("cut", ["inside the data", "at a boundary start", "inside headers"])
def test_a_multipart_body_without_its_closing_boundary_is_refused(
    world: World, tmp_path: Path, cut: str
) -> None:
    study = write_study(tmp_path, seed=31, patient_id="CUT", slices=2)
    one, two = (p.read_bytes() for p in study.files)
    whole = _multipart_head("a.dcm") + one + b"\r\n"
    body = {
        "inside the data": whole + _multipart_head("b.dcm") + two[: len(two) // 2],
        "at a boundary start": whole + _multipart_head("b.dcm") + two + b"\r\n--B",
        "inside headers": whole + b"--B\r\nContent-Disposition: form-da",
    }[cut]
    r = world.client.post(
        SESSIONS,
        content=body,
        headers={**world.h("owner"), "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "without its closing boundary '--B--'" in detail, detail
    assert "send it again" in detail
    assert _staging(world) == []
    assert _count(world, Instance) == 0


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "series_number",
    [b"1" + b"0" * 30, b"2147483648", b"-2147483649", b"1.5", b"12abc", b"1e+30"],
)
def test_series_numbers_no_column_holds_are_ignored_not_a_500(
    world: World, tmp_path: Path, series_number: bytes
) -> None:
    study = write_study(tmp_path, seed=32, patient_id="NUM", slices=1)
    data = _edited(study.files[0], SeriesNumber=series_number, InstanceNumber=b"9" * 20)
    r = _post_files(world, {"big-number.dcm": data})
    assert r.status_code == 201, r.text
    [scan] = r.json()["sessions"][0]["scans"]
    assert scan["series_number"] is None
    listed = world.client.get(SESSIONS, headers=world.h("owner"))
    assert listed.status_code == 200
    assert listed.json()[0]["scans"][0]["series_number"] is None


@SQLITE_ONLY
def test_a_number_of_frames_that_is_no_count_is_refused_with_its_name(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=33, patient_id="FRAMES", slices=1)
    data = _edited(study.files[0], NumberOfFrames=b"1" + b"0" * 30)
    r = _post_files(world, {"frames.dcm": data})
    assert r.status_code == 422, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "frames.dcm"
    assert "NumberOfFrames (0028,0008)" in refused["reason"]


# --------------------------------------------------------------------------- UIDs


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("keyword", "value", "problem"),
    [
        ("StudyInstanceUID", b"<script>", "holds the character '<'"),
        ("SeriesInstanceUID", b"../../etc", "empty component"),
        ("SOPInstanceUID", b"1.2.03", "component '03' with a leading zero"),
        ("FrameOfReferenceUID", b"1.2.a", "holds the character 'a'"),
        ("StudyInstanceUID", b"1." + b"2" * 64, "66 characters long"),
        ("SOPInstanceUID", b"1 .2", "holds the character ' '"),
    ],
)
def test_an_image_with_a_malformed_uid_is_refused_naming_the_attribute(
    world: World, tmp_path: Path, keyword: str, value: bytes, problem: str
) -> None:
    study = write_study(tmp_path, seed=34, patient_id="UID", slices=2)
    bad = _edited(study.files[0], **{keyword: value})
    r = _post_files(world, {"bad.dcm": bad, "good.dcm": study.files[1].read_bytes()})
    assert r.status_code == 201, r.text
    [refused] = r.json()["rejected"]
    assert refused["file"] == "bad.dcm"
    assert f"{keyword} (" in refused["reason"] and "is not a DICOM UID" in refused["reason"]
    assert problem in refused["reason"], refused["reason"]
    assert _count(world, Instance) == 1
    # Nothing of the bad file became a session or scan key.
    sessions = world.client.get(SESSIONS, headers=world.h("owner")).json()
    assert [s["study_instance_uid"] for s in sessions] == [study.identity.study_instance_uid]
    assert [s["series_instance_uid"] for s in sessions[0]["scans"]] == [
        study.series[0].series_instance_uid
    ]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("keyword", "value"),
    [("SOPInstanceUID", b"<script>"), ("SeriesInstanceUID", b"../../etc")],
)
def test_a_collection_with_a_malformed_uid_is_refused_naming_the_attribute(
    world: World, tmp_path: Path, keyword: str, value: bytes
) -> None:
    study = write_study(tmp_path, seed=35, patient_id="UIDRT", slices=4)
    r = _post_files(world, {p.name: p.read_bytes() for p in study.files})
    assert r.status_code == 201, r.text
    session_id = r.json()["sessions"][0]["id"]
    rt = tmp_path / "rois.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    r = world.client.put(
        f"{SESSIONS}/{session_id}/collections/annotator",
        params={"type": "RTSTRUCT"},
        content=_edited(rt, **{keyword: value}),
        headers=world.h("owner"),
    )
    assert r.status_code == 422, r.text
    assert f"its {keyword} " in r.json()["detail"]
    assert "is not a DICOM UID" in r.json()["detail"]
    assert _count(world, RoiCollection) == 0
    assert _staging(world) == []


@SQLITE_ONLY
def test_a_collection_body_that_is_a_zip_or_not_dicom_is_refused_from_its_first_bytes(
    world: World, tmp_path: Path
) -> None:
    study = write_study(tmp_path, seed=36, patient_id="SNIFF", slices=1)
    r = _post_files(world, {p.name: p.read_bytes() for p in study.files})
    session_id = r.json()["sessions"][0]["id"]
    url = f"{SESSIONS}/{session_id}/collections/annotator"
    for body, words in ((b"PK\x03\x04" + bytes(5000), "as a zip"), (bytes(9000), "not a DICOM")):
        r = world.client.put(
            url, params={"type": "RTSTRUCT"}, content=body, headers=world.h("owner")
        )
        assert r.status_code == 422, r.text
        assert words in r.json()["detail"]
        assert _staging(world) == []
