"""ROI collection upload (XNAT's PUT with the raw file) and reading, on SQLite and PostgreSQL.

RTSTRUCTs come from ``segmap.testing``, SEGs from highdicom, both over series
written here; the expected ROI names, UIDs and bytes are the ones written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from imaging_data import (
    Study,
    multipart,
    sha256,
    write_phantom_rtstruct,
    write_seg,
    write_study,
)
from server_fixtures import World


@dataclass
class Uploaded:
    """A study uploaded into project P, with the session's API URL."""

    study: Study
    session_id: int
    url: str


@pytest.fixture()
def uploaded(world: World, tmp_path: Path) -> Uploaded:
    """Study ``COLL`` with series 2 and 3 uploaded by the owner."""
    study = write_study(tmp_path / "dicom", seed=11, patient_id="COLL", series_numbers=(2, 3))
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    sid = r.json()["sessions"][0]["id"]
    return Uploaded(study, sid, f"/api/v1/projects/P/sessions/{sid}")


def _put(world: World, url: str, data: bytes, who: str = "owner", **params: str) -> object:
    return world.client.put(url, content=data, params=params, headers=world.h(who))


def test_rtstruct_is_stored_with_its_scan_and_region_names(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    series = uploaded.study.series[1]
    rt = tmp_path / "rt.dcm"
    names = write_phantom_rtstruct(rt, series)
    data = rt.read_bytes()
    r = world.client.put(
        f"{uploaded.url}/collections/Annotator 1",
        content=data,
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["label"] == "Annotator 1" and body["type"] == "RTSTRUCT"
    assert body["scan"]["series_instance_uid"] == series.series_instance_uid
    assert body["referenced_series_uid"] == series.series_instance_uid
    assert body["region_names"] == names
    assert body["sha256"] == sha256(data) and body["size"] == len(data)
    assert body["uploaded_by"] == "owner"

    meta = world.client.get(f"{uploaded.url}/collections/Annotator 1", headers=world.h("owner"))
    assert meta.status_code == 200 and meta.json()["region_names"] == names
    raw = world.client.get(body["download"], headers=world.h("owner"))
    assert raw.status_code == 200 and raw.content == data
    assert raw.headers["x-content-sha256"] == sha256(data)
    session = world.client.get(uploaded.url, headers=world.h("owner")).json()
    assert [c["label"] for c in session["collections"]] == ["Annotator 1"]
    assert session["collections"][0]["scan"]["id"] == body["scan"]["id"]


def test_seg_is_stored_with_its_segment_labels(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    series = uploaded.study.series[0]
    seg = write_seg(tmp_path / "seg.dcm", series, ["Liver", "Left Kidney"])
    r = world.client.put(
        f"{uploaded.url}/collections/seg1",
        content=seg.read_bytes(),
        params={"type": "seg"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "SEG"
    assert r.json()["region_names"] == ["Liver", "Left Kidney"]
    assert r.json()["scan"]["series_instance_uid"] == series.series_instance_uid


def test_collection_referencing_no_scan_of_the_session_is_422_naming_the_series(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    # Series 7 of the same study exists on disk but was never uploaded.
    other = write_study(tmp_path / "other", seed=11, patient_id="COLL", series_numbers=(7,))
    missing = other.series[0].series_instance_uid
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, other.series[0])
    r = world.client.put(
        f"{uploaded.url}/collections/rois",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert missing in detail
    assert "not a scan of session" in detail
    for s in uploaded.study.series:
        assert s.series_instance_uid in detail  # the scans it does have are listed
    listed = world.client.get(f"{uploaded.url}/collections", headers=world.h("owner"))
    assert listed.json() == []


def test_collection_in_another_session_is_refused(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    second = write_study(tmp_path / "b", seed=12, patient_id="OTHER")
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(second.files), headers=world.h("owner")
    )
    other_session = r.json()["sessions"][0]["id"]
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, uploaded.study.series[0])  # drawn on the first session
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{other_session}/collections/rois",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 422
    assert uploaded.study.series[0].series_instance_uid in r.json()["detail"]


def test_type_mismatch_and_bad_types_are_refused(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, uploaded.study.series[0])
    seg = write_seg(tmp_path / "seg.dcm", uploaded.study.series[0], ["Liver"])
    cases = [
        (rt.read_bytes(), "SEG", "the file is an RTSTRUCT"),
        (seg.read_bytes(), "RTSTRUCT", "the file is a SEG"),
        (rt.read_bytes(), "MASK", "type must be RTSTRUCT or SEG"),
        (uploaded.study.files[0].read_bytes(), "RTSTRUCT", "give that file, not an image"),
        (b"plain text", "RTSTRUCT", "not a DICOM file"),
    ]
    for data, kind, words in cases:
        r = world.client.put(
            f"{uploaded.url}/collections/x",
            content=data,
            params={"type": kind},
            headers=world.h("owner"),
        )
        assert r.status_code == 422, (kind, r.text)
        assert words in r.json()["detail"], r.json()["detail"]
    missing_type = world.client.put(
        f"{uploaded.url}/collections/x", content=rt.read_bytes(), headers=world.h("owner")
    )
    assert missing_type.status_code == 422
    assert world.client.get(f"{uploaded.url}/collections", headers=world.h("owner")).json() == []


def test_overwrite_semantics(world: World, uploaded: Uploaded, tmp_path: Path) -> None:
    first = tmp_path / "first.dcm"
    write_phantom_rtstruct(first, uploaded.study.series[0], label="first")
    second = tmp_path / "second.dcm"
    write_phantom_rtstruct(second, uploaded.study.series[1], label="second")
    url = f"{uploaded.url}/collections/rois"
    r1 = world.client.put(
        url, content=first.read_bytes(), params={"type": "RTSTRUCT"}, headers=world.h("owner")
    )
    assert r1.status_code == 201
    for label in ("rois", "ROIS"):  # labels compare case-insensitively
        clash = world.client.put(
            f"{uploaded.url}/collections/{label}",
            content=second.read_bytes(),
            params={"type": "RTSTRUCT"},
            headers=world.h("owner"),
        )
        assert clash.status_code == 409, clash.text
        assert "overwrite=true" in clash.json()["detail"]
    kept = world.client.get(f"{url}/file", headers=world.h("owner"))
    assert kept.content == first.read_bytes()
    r2 = world.client.put(
        url,
        content=second.read_bytes(),
        params={"type": "RTSTRUCT", "overwrite": "true"},
        headers=world.h("owner"),
    )
    assert r2.status_code == 200, r2.text
    assert r2.json()["id"] == r1.json()["id"]
    assert r2.json()["sha256"] == sha256(second.read_bytes())
    assert r2.json()["scan"]["series_instance_uid"] == uploaded.study.series[1].series_instance_uid
    assert world.client.get(f"{url}/file", headers=world.h("owner")).content == second.read_bytes()
    collections_dir = world.api.app.state.storage.objects / "sessions"
    assert len([p for p in collections_dir.rglob("*") if p.is_file()]) == 1  # old one deleted
    # overwrite=true on a new label simply creates it.
    r3 = world.client.put(
        f"{uploaded.url}/collections/new",
        content=first.read_bytes(),
        params={"type": "RTSTRUCT", "overwrite": "true"},
        headers=world.h("owner"),
    )
    assert r3.status_code == 201


def test_collaborators_read_and_download_but_cannot_upload(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, uploaded.study.series[0])
    data = rt.read_bytes()
    url = f"{uploaded.url}/collections/rois"
    for who, status in (("collab", 403), ("member", 403), ("outsider", 403), ("anon", 401)):
        r = world.client.put(url, content=data, params={"type": "RTSTRUCT"}, headers=world.h(who))
        assert r.status_code == status, (who, r.text)
    assert (
        world.client.put(
            url, content=data, params={"type": "RTSTRUCT"}, headers=world.h("admin")
        ).status_code
        == 201
    )
    for who in ("collab", "member", "owner", "admin"):
        assert world.client.get(url, headers=world.h(who)).status_code == 200
        download = world.client.get(f"{url}/file", headers=world.h(who))
        assert download.status_code == 200 and download.content == data
    for who, status in (("outsider", 403), ("anon", 401)):
        assert world.client.get(f"{url}/file", headers=world.h(who)).status_code == status
    assert (
        world.client.get(f"{uploaded.url}/collections/nope", headers=world.h("owner")).status_code
        == 404
    )
    bad_session = world.client.put(
        "/api/v1/projects/P/sessions/424242/collections/rois",
        content=data,
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert bad_session.status_code == 404


def test_bad_labels_are_refused(world: World, uploaded: Uploaded, tmp_path: Path) -> None:
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, uploaded.study.series[0])
    for label in (" padded", "tab%09here", "x" * 256):
        r = world.client.put(
            f"{uploaded.url}/collections/{label}",
            content=rt.read_bytes(),
            params={"type": "RTSTRUCT"},
            headers=world.h("owner"),
        )
        assert r.status_code == 422, (label, r.text)
        assert "collection label" in r.json()["detail"]


def test_rtstruct_with_rois_in_two_frames_of_reference_is_refused_at_upload(
    world: World, uploaded: Uploaded, tmp_path: Path
) -> None:
    """One ROI in the scan's frame of reference and one in another: the conversion refuses
    such a file, so the upload does too (before, it was stored and every job failed)."""
    import pydicom

    from segmap.annotations import check_frame_of_reference, read_annotation_info
    from segmap.errors import AnnotationError
    from segmap.imaging.series import load_series

    series = uploaded.study.series[0]
    scan_for = pydicom.dcmread(series.files[0], stop_before_pixels=True).FrameOfReferenceUID
    other_for = "1.2.826.0.1.3680043.8.498.77"
    rt = tmp_path / "two-frames.dcm"
    write_phantom_rtstruct(rt, series)
    ds = pydicom.dcmread(rt)
    rois = ds.StructureSetROISequence
    assert len(rois) >= 2 and all(r.ReferencedFrameOfReferenceUID == scan_for for r in rois)
    rois[1].ReferencedFrameOfReferenceUID = other_for
    ds.save_as(rt)

    # The conversion's rule refuses the file for this very scan...
    with pytest.raises(AnnotationError) as refused:
        check_frame_of_reference(read_annotation_info(rt), load_series(list(series.files)))
    assert other_for in str(refused.value)

    # ...so the upload refuses it, naming both frames of reference, and stores nothing.
    model = world.model_url
    r = world.client.patch(model, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    r = world.client.put(
        f"{model}/resources/maps/files/region2MaskValueMap.txt",
        content=b"Liver=1\n",
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    r = world.client.put(
        f"{uploaded.url}/collections/two-frames",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert other_for in detail and scan_for in detail, detail
    assert "frames of reference" in detail
    assert world.client.get(f"{uploaded.url}/collections", headers=world.h("owner")).json() == []
    jobs = world.client.get(f"{world.project_url}/jobs", headers=world.h("owner")).json()
    assert jobs == []

    # The same RTSTRUCT with every ROI back in the scan's frame is stored and queued.
    rois[1].ReferencedFrameOfReferenceUID = scan_for
    ds.save_as(rt)
    r = world.client.put(
        f"{uploaded.url}/collections/two-frames",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    jobs = world.client.get(f"{world.project_url}/jobs", headers=world.h("owner")).json()
    assert [j["collection"] for j in jobs] == ["two-frames"]
