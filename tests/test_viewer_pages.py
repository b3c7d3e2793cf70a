"""The viewer on segmap's pages, on SQLite and PostgreSQL, through the real app.

- Each ROI collection says who stored it and by which route: the REST upload, STOW-RS by
  a DICOMweb client (dicomweb-client over real HTTP), or STOW-RS from the viewer's page
  (told apart by the ``Referer`` a browser sends from ``/ohif/``; the real OHIF's own
  save call is driven in ``test_viewer_pages_browser.py``). The API and the session page
  show the same.
- The sessions list offers Open in OHIF per session: as OHIF ships, and with each model
  that has a region map; each link names that session's study and its project's data
  source.
- The project tabs have Viewer: OHIF's study list on the project's data source, 404 for
  outsiders, a note when the viewer is not installed.

Expected URLs are written out from OHIF's documented URL forms, not built by the code
under test.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pydicom
import requests
from fastapi.testclient import TestClient

from dicomweb_helpers import client_for
from imaging_data import Study, multipart, write_seg, write_study
from segmap.server.app import create_app
from segmap.server.settings import Settings
from server_fixtures import ThreadedServer, World

MAP = "Liver=1\nSpleen=2\n"


@dataclass(frozen=True)
class Stored:
    """Project P's session (id, study) and its first series."""

    session_id: int
    study: Study


def _store_study(world: World, folder: Path, patient_id: str = "VP1", seed: int = 41) -> Stored:
    study = write_study(folder, seed=seed, patient_id=patient_id)
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    return Stored(int(r.json()["sessions"][0]["id"]), study)


def _seg(folder: Path, stored: Stored, name: str, description: str) -> pydicom.Dataset:
    path = write_seg(folder / f"{name}.dcm", stored.study.series[0], ["Liver"])
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = description  # STOW-RS labels a collection by it
    return ds


def _api_collections(world: World, session_id: int) -> dict[str, dict[str, Any]]:
    r = world.client.get(
        f"/api/v1/projects/P/sessions/{session_id}/collections", headers=world.h("member")
    )
    assert r.status_code == 200, r.text
    return {c["label"]: c for c in r.json()}


def _page_provenance(world: World, session_id: int) -> dict[str, tuple[str, str, str]]:
    """``{label: (data-via, who, route words)}`` as the session page shows them."""
    r = world.client.get(f"/projects/P/sessions/{session_id}", headers=world.h("member"))
    assert r.status_code == 200, r.text
    found = re.findall(
        r'<section class="collection" data-collection="([^"]*)">.*?'
        r'data-role="provenance" data-via="([^"]*)">stored by <span data-role="stored-by">'
        r'([^<]*)</span> through <span data-role="stored-via">([^<]*)</span>',
        r.text,
        re.S,
    )
    return {html.unescape(label): (via, who, words) for label, via, who, words in found}


def test_an_upload_is_shown_as_upload_by_its_uploader(world: World, tmp_path: Path) -> None:
    stored = _store_study(world, tmp_path / "study")
    seg = write_seg(tmp_path / "seg.dcm", stored.study.series[0], ["Liver"])
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{stored.session_id}/collections/Reader 1",
        content=seg.read_bytes(),
        params={"type": "SEG"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["stored_by"], r.json()["stored_via"]) == ("owner", "upload")
    listed = _api_collections(world, stored.session_id)["Reader 1"]
    assert (listed["stored_by"], listed["stored_via"]) == ("owner", "upload")
    assert _page_provenance(world, stored.session_id) == {"Reader 1": ("upload", "owner", "upload")}


def _stow_as_a_browser(base: str, headers: dict[str, str], ds: pydicom.Dataset) -> None:
    """STOW-RS of one instance with a browser's headers (Host with its port, as browsers
    send it; dicomweb-client sends the host name alone)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    boundary = "viewer-pages-test"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + buffer.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    r = requests.post(
        f"{base}/dicomweb/projects/P/studies",
        data=body,
        headers={**headers, "Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def test_stow_by_a_dicomweb_client_is_shown_as_dicomweb_and_from_the_viewer_as_ohif(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    stored = _store_study(world, tmp_path / "study")
    base = threaded_server.url
    owner = world.h("owner")
    answer = client_for(base, owner).store_instances([_seg(tmp_path, stored, "c", "by client")])
    assert "FailedSOPSequence" not in answer, answer
    study = stored.study.identity.study_instance_uid
    referers = {
        "from OHIF": f"{base}/ohif/segmentation/P?StudyInstanceUIDs={study}",
        "from a segmap page": f"{base}/projects/P/sessions/{stored.session_id}",
        "from another site": f"http://viewer.invalid/ohif/segmentation/P?StudyInstanceUIDs={study}",
        "from another port": f"http://127.0.0.1:1/ohif/segmentation/P?StudyInstanceUIDs={study}",
    }
    for n, (label, referer) in enumerate(referers.items()):
        _stow_as_a_browser(
            base, {**owner, "Referer": referer}, _seg(tmp_path, stored, f"b{n}", label)
        )
    expected_via = {
        "by client": "dicomweb",
        "from OHIF": "ohif",
        "from a segmap page": "dicomweb",
        "from another site": "dicomweb",
        "from another port": "dicomweb",
    }
    words = {"dicomweb": "DICOMweb", "ohif": "OHIF"}
    listed = _api_collections(world, stored.session_id)
    assert {k: (v["stored_by"], v["stored_via"]) for k, v in listed.items()} == {
        label: ("owner", via) for label, via in expected_via.items()
    }
    assert _page_provenance(world, stored.session_id) == {
        label: (via, "owner", words[via]) for label, via in expected_via.items()
    }


def test_a_replacement_records_its_own_route(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> None:
    stored = _store_study(world, tmp_path / "study")
    answer = client_for(threaded_server.url, world.h("owner")).store_instances(
        [_seg(tmp_path, stored, "first", "Reader 2")]
    )
    assert "FailedSOPSequence" not in answer, answer
    assert _api_collections(world, stored.session_id)["Reader 2"]["stored_via"] == "dicomweb"
    second = world.api.make_user("second-owner")
    r = world.client.post(
        "/api/v1/projects/P/members",
        json={"username": "second-owner", "role": "owner"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    seg = write_seg(tmp_path / "again.dcm", stored.study.series[0], ["Spleen"])
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{stored.session_id}/collections/Reader 2",
        content=seg.read_bytes(),
        params={"type": "SEG", "overwrite": "true"},
        headers=world.api.auth(second),
    )
    assert r.status_code == 200, r.text
    assert _page_provenance(world, stored.session_id) == {
        "Reader 2": ("upload", "second-owner", "upload")
    }


def _session_rows(text: str) -> dict[str, list[tuple[str, str | None]]]:
    """``{session label: [(link URL, data-model or None), ...]}`` of the sessions list."""
    rows: dict[str, list[tuple[str, str | None]]] = {}
    for label, body in re.findall(
        r'<tr data-session="([^"]*)"[^>]*class="first">(.*?)</tr>', text, re.S
    ):
        links = re.findall(
            r'<a href="([^"]+)" data-testid="open-in-ohif"(?: data-model="([^"]*)")?', body
        )
        rows[html.unescape(label)] = [(html.unescape(u), m or None) for u, m in links]
    return rows


def test_sessions_list_opens_each_session_in_ohif_per_model(world: World, tmp_path: Path) -> None:
    first = _store_study(world, tmp_path / "one", patient_id="VP1", seed=41)
    second = _store_study(world, tmp_path / "two", patient_id="VP2", seed=42)
    owner = world.h("owner")
    r = world.client.put(
        f"{world.model_url}/resources/maps/files/region2MaskValueMap.txt",
        content=MAP.encode(),
        headers=owner,
    )
    assert r.status_code == 201, r.text
    # A second model without a map: OHIF cannot preset its labels, so no link for it.
    r = world.client.post(
        "/api/v1/projects/P/models",
        json={"label": "no-map", "description": "", "voxel_spacing": [1.0, 1.0, 1.0]},
        headers=owner,
    )
    assert r.status_code == 201, r.text
    r = world.client.get("/projects/P/sessions", headers=world.h("collab"))
    assert r.status_code == 200, r.text
    rows = _session_rows(r.text)
    for stored, patient in ((first, "VP1"), (second, "VP2")):
        uid = stored.study.identity.study_instance_uid
        label = next(k for k in rows if k.startswith(patient))
        assert rows[label] == [
            (f"/ohif/segmentation/P?StudyInstanceUIDs={uid}", None),
            (
                f"/ohif/segmentation/P?StudyInstanceUIDs={uid}&segmapProject=P"
                "&segmapModel=liver-ct",
                "liver-ct",
            ),
        ]
    assert len(rows) == 2


def test_sessions_list_links_name_their_own_projects_data_source(
    world: World, tmp_path: Path
) -> None:
    owner = world.h("owner")
    r = world.client.post("/api/v1/projects", json={"id": "Q-2", "name": "Q"}, headers=owner)
    assert r.status_code == 201, r.text
    study = write_study(tmp_path / "q", seed=43, patient_id="VQ")
    r = world.client.post(
        "/api/v1/projects/Q-2/sessions", files=multipart(study.files), headers=owner
    )
    assert r.status_code == 201, r.text
    rows = _session_rows(world.client.get("/projects/Q-2/sessions", headers=owner).text)
    uid = study.identity.study_instance_uid
    assert list(rows.values()) == [[(f"/ohif/segmentation/Q-2?StudyInstanceUIDs={uid}", None)]]
    # OHIF opens the link under the data source it names: index.html for its owner.
    assert world.client.get(rows[next(iter(rows))][0][0], headers=owner).status_code == 200


def _tabs(text: str) -> list[tuple[str, str, bool]]:
    nav = re.search(r'<nav class="tabs" aria-label="Project"[^>]*>(.*?)</nav>', text, re.S)
    assert nav is not None
    return [
        (html.unescape(label), html.unescape(href), "active" in cls)
        for href, cls, label in re.findall(
            r'<a href="([^"]+)" class="([^"]*)">([^<]+)</a>', nav.group(1)
        )
    ]


def test_project_tabs_have_viewer_opening_the_projects_study_list(world: World) -> None:
    for path in ("/projects/P", "/projects/P/sessions", "/projects/P/jobs"):
        tabs = _tabs(world.client.get(path, headers=world.h("member")).text)
        assert [(label, href) for label, href, _ in tabs] == [
            ("Overview", "/projects/P"),
            ("Sessions", "/projects/P/sessions"),
            ("Jobs", "/projects/P/jobs"),
            ("Machine Learning", "/projects/P/machine-learning"),
            ("Viewer", "/projects/P/viewer"),
        ]
    r = world.client.get("/projects/P/viewer", headers=world.h("collab"), follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ohif/?dataSources=P"
    # The study list is OHIF's page (index.html) for a user of the project.
    assert world.client.get(r.headers["location"], headers=world.h("collab")).status_code == 200


def test_viewer_tab_is_404_for_outsiders_and_sends_anonymous_visitors_to_log_in(
    world: World,
) -> None:
    r = world.client.get("/projects/P/viewer", headers=world.h("outsider"), follow_redirects=False)
    assert r.status_code == 404
    r = world.client.get("/projects/P/viewer", follow_redirects=False)
    assert r.status_code in (302, 303)
    assert r.headers["location"].startswith("/login")
    r = world.client.get(
        f"/projects/{quote('NOPE')}/viewer", headers=world.h("member"), follow_redirects=False
    )
    assert r.status_code == 404


def test_without_the_viewer_the_tab_and_the_lists_say_so(
    tmp_path: Path, settings: Settings
) -> None:
    from server_fixtures import Api

    app: Any = create_app(replace(settings, ohif_dir=tmp_path / "empty"))
    try:
        with TestClient(app) as client:
            api = Api(client, app)
            owner = Api.auth(api.make_user("owner"))
            r = client.post("/api/v1/projects", json={"id": "P", "name": "P"}, headers=owner)
            assert r.status_code == 201, r.text
            study = write_study(tmp_path / "s", seed=44, patient_id="VN")
            r = client.post(
                "/api/v1/projects/P/sessions", files=multipart(study.files), headers=owner
            )
            assert r.status_code == 201, r.text
            session_id = r.json()["sessions"][0]["id"]
            r = client.get("/projects/P/viewer", headers=owner, follow_redirects=False)
            assert r.status_code == 200
            assert 'data-testid="viewer-missing"' in r.text
            assert "scripts/install-ohif.py" in r.text
            assert ("Viewer", "/projects/P/viewer", True) in _tabs(r.text)
            listing = client.get("/projects/P/sessions", headers=owner).text
            assert 'data-testid="viewer-missing"' in listing
            assert 'data-testid="open-in-ohif"' not in listing
            page = client.get(f"/projects/P/sessions/{session_id}", headers=owner).text
            assert 'data-testid="open-in-ohif"' not in page
    finally:
        app.state.database.dispose()


def test_collections_stored_before_revision_0010_read_upload(settings: Settings) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import text

    from segmap.server.db.engine import MIGRATIONS_DIR, Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with database.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            # PostgreSQL's fresh database is migrated already, SQLite's is empty.
            if MigrationContext.configure(conn).get_current_revision() is None:
                command.upgrade(cfg, "0009_archive")
            else:
                command.downgrade(cfg, "0009_archive")
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, id_key, name, created_at) "
                              "VALUES ('M', 'm', 'M', CURRENT_TIMESTAMP)"))  # fmt: skip
            conn.execute(text("INSERT INTO imaging_sessions (id, project_id, study_instance_uid, "
                              "label, subject, study_description, created_at) VALUES "
                              "(1, 'M', '1.2.3', 'S', '', '', CURRENT_TIMESTAMP)"))  # fmt: skip
            conn.execute(text("INSERT INTO scans (id, session_id, series_instance_uid, modality, "
                              "description, slice_count, created_at) VALUES "
                              "(1, 1, '1.2.3.4', 'CT', '', 1, CURRENT_TIMESTAMP)"))  # fmt: skip
            conn.execute(text("INSERT INTO roi_collections (session_id, scan_id, label, "
                              "label_key, collection_type, sop_instance_uid, "
                              "referenced_series_uid, region_names, size, sha256, storage_key, "
                              "uploaded_at) VALUES (1, 1, 'Old', 'old', 'SEG', '1.2.3.5', "
                              "'1.2.3.4', '[]', 1, 'x', 'k', CURRENT_TIMESTAMP)"))  # fmt: skip
        database.migrate()
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT stored_via FROM roi_collections")).scalar() == "upload"
    finally:
        database.dispose()
