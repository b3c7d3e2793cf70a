"""XNAT's ROI collection PUT with HTTP Basic, as XNAT upload scripts send it.

Through the real server over HTTP (requests, as those scripts use), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import requests

from imaging_data import Study, multipart, write_phantom_rtstruct, write_seg, write_study
from server_fixtures import PASSWORD, ThreadedServer, World


def _session(world: World, folder: Path, patient: str, seed: int) -> tuple[int, str, Study]:
    study = write_study(folder, seed=seed, patient_id=patient, series_numbers=(2,))
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    return int(session["id"]), str(session["label"]), study


def test_xnat_put_stores_replaces_and_refuses_like_xnat(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    sid, label, study = _session(world, tmp_path / "a", "XA", 51)
    other_sid, _, other = _session(world, tmp_path / "b", "XB", 52)
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    base = f"{threaded_server.url}/xapi/roi/projects/P/sessions"
    auth = ("owner", PASSWORD)
    octet = {"Content-Type": "application/octet-stream"}

    def put(session: object, name: str, path: Path, kind: str, **extra: str) -> requests.Response:
        return requests.put(
            f"{base}/{session}/collections/{name}",
            params={"type": kind, **extra},
            data=path.read_bytes(),
            headers=octet,
            auth=auth,
            timeout=60,
        )

    r = put(label, "liver", rt, "RTSTRUCT")  # the session by its label, as XNAT names it
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain") and r.text.isdigit()
    collections = world.client.get(
        f"/api/v1/projects/P/sessions/{sid}/collections", headers=world.h("member")
    ).json()
    assert [(c["id"], c["label"], c["type"]) for c in collections] == [
        (int(r.text), "liver", "RTSTRUCT")
    ]

    seg = write_seg(tmp_path / "seg.dcm", study.series[0], ["Liver"])
    r = put(sid, "liver", seg, "SEG")
    assert r.status_code == 422 and "overwrite=true" in r.json()["detail"]
    r = put(sid, "liver", seg, "SEG", overwrite="true")
    assert r.status_code == 200, r.text
    collections = world.client.get(
        f"/api/v1/projects/P/sessions/{sid}/collections", headers=world.h("member")
    ).json()
    assert [(c["label"], c["type"], c["sop_instance_uid"]) for c in collections] == [
        ("liver", "SEG", pydicom.dcmread(seg).SOPInstanceUID)
    ]

    other_seg = write_seg(tmp_path / "seg2.dcm", other.series[0], ["Liver"])
    r = put(other_sid, "liver", other_seg, "SEG")
    assert r.status_code == 409 and "unique in a project" in r.json()["detail"]

    r = requests.put(
        f"{base}/{sid}/collections/new", params={"type": "SEG"}, data=seg.read_bytes(),
        headers=octet, auth=("member", PASSWORD), timeout=60,
    )  # fmt: skip
    assert r.status_code == 403
    r = requests.put(
        f"{base}/{sid}/collections/new", params={"type": "SEG"}, data=seg.read_bytes(),
        headers=octet, timeout=60,
    )  # fmt: skip
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
