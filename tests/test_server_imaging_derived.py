"""Derived resources: written by ``replace_derived_resource`` (as jobs do), read by the API.

Runs on SQLite and PostgreSQL. Expected sizes and SHA-256 are computed here from the
files handed over; the atomic swap is checked by failing a replacement half-way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from imaging_data import multipart, sha256, write_study
from segmap.server.db.imaging import DerivedFolder, Scan
from segmap.server.errors import Unprocessable
from segmap.server.imaging.derived import replace_derived_resource, sweep_unreferenced
from segmap.server.imaging.lookup import scan_files
from server_fixtures import World


@dataclass
class Target:
    """An uploaded scan and the API URL of its resources."""

    scan_id: int
    url: str


@pytest.fixture()
def target(world: World, tmp_path: Path) -> Target:
    study = write_study(tmp_path / "dicom", seed=21, patient_id="DERIVED", slices=2)
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    scan_id = session["scans"][0]["id"]
    return Target(scan_id, f"/api/v1/projects/P/sessions/{session['id']}/scans/{scan_id}/resources")


def _files(folder: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in contents.items():
        path = folder / name
        path.write_bytes(data)
        out[name] = path
    return out


def _replace(world: World, scan_id: int, label: str, files: dict[str, Path], **kw: object) -> None:
    app = world.api.app
    with app.state.database.session(write=True) as db:
        replace_derived_resource(db, app.state.storage, scan_id, label, files, **kw)


def _version_dirs(world: World, scan_id: int) -> list[Path]:
    root = world.api.app.state.storage.objects / "scans" / str(scan_id) / "derived"
    return sorted(p for p in root.iterdir()) if root.exists() else []


FIRST = {
    "mask.nii.gz": b"\x1f\x8b mask bytes " * 50,
    "report.json": b'{"regions": []}\n',
    "preview.png": b"\x89PNG\r\n\x1a\n fake picture",
}


def test_listing_and_download_after_replace(world: World, target: Target, tmp_path: Path) -> None:
    _replace(
        world, target.scan_id, "liver-ct", _files(tmp_path / "out", FIRST), model=world.model_id
    )
    r = world.client.get(target.url, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    [folder] = r.json()
    assert folder["label"] == "liver-ct" and folder["model"] == "liver-ct"
    assert {f["name"]: (f["size"], f["sha256"]) for f in folder["files"]} == {
        name: (len(data), sha256(data)) for name, data in FIRST.items()
    }
    for name, data in FIRST.items():
        got = world.client.get(f"{target.url}/liver-ct/files/{name}", headers=world.h("collab"))
        assert got.status_code == 200 and got.content == data
        assert got.headers["x-content-sha256"] == sha256(data)
    png = world.client.get(f"{target.url}/liver-ct/files/preview.png", headers=world.h("owner"))
    assert png.headers["content-type"] == "image/png"
    missing = world.client.get(f"{target.url}/liver-ct/files/nope.txt", headers=world.h("owner"))
    assert missing.status_code == 404


def test_replacing_swaps_the_whole_folder(world: World, target: Target, tmp_path: Path) -> None:
    _replace(world, target.scan_id, "liver-ct", _files(tmp_path / "a", FIRST))
    _replace(world, target.scan_id, "spleen", _files(tmp_path / "s", {"mask.nii.gz": b"spleen"}))
    second = {"mask.nii.gz": b"new mask", "report.json": b'{"regions": [1]}\n'}
    _replace(world, target.scan_id, "liver-ct", _files(tmp_path / "b", second))
    folders = {f["label"]: f for f in world.client.get(target.url, headers=world.h("owner")).json()}
    assert set(folders) == {"liver-ct", "spleen"}
    assert {f["name"] for f in folders["liver-ct"]["files"]} == set(second)  # preview gone
    got = world.client.get(f"{target.url}/liver-ct/files/mask.nii.gz", headers=world.h("owner"))
    assert got.content == b"new mask"
    gone = world.client.get(f"{target.url}/liver-ct/files/preview.png", headers=world.h("owner"))
    assert gone.status_code == 404
    assert len(_version_dirs(world, target.scan_id)) == 2  # the replaced version was deleted


def test_failure_in_the_middle_leaves_the_old_folder_intact(
    world: World, target: Target, tmp_path: Path
) -> None:
    _replace(world, target.scan_id, "liver-ct", _files(tmp_path / "old", FIRST))
    before = world.client.get(target.url, headers=world.h("owner")).json()
    dirs_before = _version_dirs(world, target.scan_id)
    broken = _files(tmp_path / "new", {"mask.nii.gz": b"half written"})
    broken["report.json"] = tmp_path / "new" / "never-written.json"  # fails on the 2nd file
    broken["preview.png"] = tmp_path / "new" / "mask.nii.gz"
    with pytest.raises(FileNotFoundError):
        _replace(world, target.scan_id, "liver-ct", broken)
    assert world.client.get(target.url, headers=world.h("owner")).json() == before
    for name, data in FIRST.items():
        got = world.client.get(f"{target.url}/liver-ct/files/{name}", headers=world.h("owner"))
        assert got.content == data
    assert _version_dirs(world, target.scan_id) == dirs_before  # nothing half-placed left
    assert list(world.api.app.state.storage.staging.iterdir()) == []


def test_bad_names_are_refused_before_anything_is_written(
    world: World, target: Target, tmp_path: Path
) -> None:
    files = _files(tmp_path / "x", {"a.txt": b"a"})
    for label, names in (
        ("../up", files),
        ("ok", {"Mask.nii.gz": files["a.txt"], "mask.nii.gz": files["a.txt"]}),
        ("ok", {}),
    ):
        with pytest.raises(Unprocessable):
            _replace(world, target.scan_id, label, names)
    assert _version_dirs(world, target.scan_id) == []


def test_readers_list_and_download_outsiders_cannot(
    world: World, target: Target, tmp_path: Path
) -> None:
    _replace(world, target.scan_id, "liver-ct", _files(tmp_path / "out", FIRST))
    for who in ("owner", "member", "collab", "admin"):
        assert world.client.get(target.url, headers=world.h(who)).status_code == 200
    for who, status in (("outsider", 403), ("anon", 401)):
        assert world.client.get(target.url, headers=world.h(who)).status_code == status
        f = world.client.get(f"{target.url}/liver-ct/files/report.json", headers=world.h(who))
        assert f.status_code == status
    wrong_scan = target.url.replace(f"/scans/{target.scan_id}/", "/scans/999999/")
    assert world.client.get(wrong_scan, headers=world.h("owner")).status_code == 404


def test_sweep_removes_only_unreferenced_old_files(
    world: World, target: Target, tmp_path: Path
) -> None:
    _replace(world, target.scan_id, "liver-ct", _files(tmp_path / "out", FIRST))
    storage = world.api.app.state.storage
    orphan_dir = storage.objects / "scans" / str(target.scan_id) / "derived" / "deadbeef"
    orphan_dir.mkdir(parents=True)
    orphan = orphan_dir / "000-mask.nii.gz"
    orphan.write_bytes(b"left by a crash")
    young = orphan_dir / "001-report.json"
    young.write_bytes(b"still being written")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    with world.api.app.state.database.session() as db:
        removed = sweep_unreferenced(db, storage, older_than_s=3600)
        kept = [f.storage_key for d in db.scalars(select(DerivedFolder)) for f in d.files]
        scan = db.get(Scan, target.scan_id)
        assert scan is not None and scan.slice_count == 2
        instance_files = scan_files(db, storage, target.scan_id)
    assert removed == 1
    assert not orphan.exists() and young.exists()
    assert all(storage.local_path(k).is_file() for k in kept)
    assert len(instance_files) == 2 and all(p.is_file() for p in instance_files)
