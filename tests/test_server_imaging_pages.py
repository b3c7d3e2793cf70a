"""The session pages as a logged-in browser gets them (server-rendered HTML), on both backends.

The data is real: a synthetic study and RTSTRUCT uploaded through the API, a region map
on the model, and a real conversion (``segmap.pipeline.convert``) stored as the scan's
derived resources. Expected figures come from the written files and the report.json the
conversion wrote, not from the page code.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imaging_data import Study, multipart, write_phantom_rtstruct, write_study
from segmap.pipeline.convert import ConvertOptions, convert
from segmap.server.accounts.service import find_user
from segmap.server.imaging.collections import collection_file, get_collection
from segmap.server.imaging.derived import replace_derived_resource
from segmap.server.imaging.lookup import scan_files
from server_fixtures import PASSWORD, World

MAP = "Liver=10\nSpleen=20\nKidney=30\n"  # the phantom's "Kidneys" matches nothing


@dataclass
class Page:
    """A project with one session, its RTSTRUCT, and a model with a region map."""

    world: World
    study: Study
    session_id: int
    scan_id: int
    roi_names: list[str]


@pytest.fixture()
def page_data(world: World, tmp_path: Path) -> Page:
    study = write_study(tmp_path / "dicom", seed=31, patient_id="PAGES", series_numbers=(2,))
    c, owner = world.client, world.h("owner")
    r = c.post("/api/v1/projects/P/sessions", files=multipart(study.files), headers=owner)
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    rt = tmp_path / "rt.dcm"
    names = write_phantom_rtstruct(rt, study.series[0])
    url = f"/api/v1/projects/P/sessions/{session['id']}/collections/Reader 1"
    r = c.put(url, content=rt.read_bytes(), params={"type": "RTSTRUCT"}, headers=owner)
    assert r.status_code == 201, r.text
    r = c.put(
        f"{world.model_url}/resources/map/files/region2MaskValueMap.txt",
        content=MAP.encode(),
        headers=owner,
    )
    assert r.status_code == 201, r.text
    return Page(world, study, session["id"], session["scans"][0]["id"], names)


def _browser(world: World, username: str) -> Iterator[TestClient]:
    with TestClient(world.api.app) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        yield client


@pytest.fixture()
def owner_browser(page_data: Page) -> Iterator[TestClient]:
    yield from _browser(page_data.world, "owner")


@pytest.fixture()
def collab_browser(page_data: Page) -> Iterator[TestClient]:
    yield from _browser(page_data.world, "collab")


def _row(text: str, attribute: str, value: str) -> str:
    """The HTML of the table row ``<tr attribute="value" ...>...</tr>``."""
    match = re.search(
        rf'<tr [^>]*\b{attribute}="{re.escape(html.escape(value))}"[^>]*>(.*?)</tr>', text, re.S
    )
    assert match is not None, f"no row {attribute}={value!r}"
    return match.group(1)


def _cells(row: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def test_sessions_tab_lists_sessions_with_their_scans(
    page_data: Page, owner_browser: TestClient
) -> None:
    r = owner_browser.get("/projects/P/sessions")
    assert r.status_code == 200
    text = r.text
    assert '<a href="/projects/P/sessions" class="active">Sessions</a>' in text
    series = page_data.study.series[0]
    cells = _cells(_row(text, "data-series", series.series_instance_uid))
    # session label, subject, date, scan (its id, the series number beside), modality,
    # description, slices, Open in OHIF (plain, and with the mapped model's labels)
    scan = f"Scan {page_data.scan_id} (series 2)"
    viewer = "Open in OHIF Open in OHIF with liver-ct&#39;s labels"  # as the HTML has it
    assert cells == [
        "PAGES_20240102", "PAGES", "2024-01-02", scan, "CT", "Synthetic CT 2", "4", viewer
    ]  # fmt: skip
    assert 'data-testid="upload-session"' in text
    # The other project tabs carry the Sessions tab too.
    overview = owner_browser.get("/projects/P").text
    assert 'href="/projects/P/sessions"' in overview


def test_collaborator_sees_sessions_without_upload(
    page_data: Page, collab_browser: TestClient
) -> None:
    text = collab_browser.get("/projects/P/sessions").text
    assert "PAGES_20240102" in text
    assert 'data-testid="upload-session"' not in text
    session = collab_browser.get(f"/projects/P/sessions/{page_data.session_id}").text
    assert "Reader 1" in session
    assert 'data-testid="upload-collection-button"' not in session
    assert 'id="upload-collection"' not in session


def test_region_names_are_marked_matched_or_unmatched_per_model(
    page_data: Page, owner_browser: TestClient
) -> None:
    world = page_data.world
    r = world.client.post(
        "/api/v1/projects/P/models",
        json={"label": "no-map", "voxel_spacing": [1, 1, 1]},
        headers=world.h("owner"),
    )
    assert r.status_code == 201
    text = owner_browser.get(f"/projects/P/sessions/{page_data.session_id}").text
    assert 'data-testid="upload-collection-button"' in text
    expected = {"Liver": ("Liver", 10), "Spleen": ("Spleen", 20)}
    for name in page_data.roi_names:
        row = _row(text, "data-region", name)
        liver_ct, no_map = re.findall(r'<td data-model="[^"]+">(.*?)</td>', row, re.S)
        if name in expected:
            label, value = expected[name]
            assert 'data-match="matched"' in liver_ct and f"{label} = {value}" in liver_ct
        else:
            assert 'data-match="unmatched"' in liver_ct, name
        assert "data-match" not in no_map  # a model without a map matches nothing
    assert "Kidney" in _row(text, "data-region", "Kidneys")  # suggested as the closest label
    assert "no region map yet" in text


def test_derived_preview_and_report_figures_are_shown(
    page_data: Page, owner_browser: TestClient, tmp_path: Path
) -> None:
    app = page_data.world.api.app
    out = tmp_path / "out"
    with app.state.database.session(write=True) as db:
        collection = get_collection(db, _owner(page_data), "P", page_data.session_id, "Reader 1")
        images = scan_files(db, app.state.storage, collection.scan_id)
        (tmp_path / "map.txt").write_text(MAP)
        convert(
            tmp_path / "map.txt",
            images[0].parent,
            collection_file(db, app.state.storage, collection),
            out,
            ConvertOptions(spacing=(2.0, 2.0, 2.5)),
        )
        files = {p.name: p for p in out.iterdir()}
        replace_derived_resource(
            db,
            app.state.storage,
            collection.scan_id,
            "liver-ct",
            files,
            model=page_data.world.model_id,
        )
    report = json.loads((out / "report.json").read_text())
    text = owner_browser.get(f"/projects/P/sessions/{page_data.session_id}").text
    preview = (
        f"/api/v1/projects/P/sessions/{page_data.session_id}/scans/{page_data.scan_id}"
        "/resources/liver-ct/files/preview.png"
    )
    assert f'src="{preview}"' in text
    png = owner_browser.get(preview)
    assert png.status_code == 200 and png.content == (out / "preview.png").read_bytes()
    figures = re.search(r'data-testid="report-figures"(.*?)</table>', text, re.S)
    assert figures is not None
    for region in report["regions"]:
        cells = _cells(_row(figures.group(1), "data-region", region["name"]))
        # region, label, value, status, voxels, volume, contours used
        assert cells[3] == region["status"]
        assert cells[4] == str(region["voxels"])
        assert cells[5] == f"{region['volume_mm3'] / 1000:.2f} mL"
    skipped = re.search(r'data-testid="report-skipped"(.*?)</div>', text, re.S)
    assert skipped is not None
    unmatched = [r["name"] for r in report["regions"] if r["status"] == "unmatched"]
    assert unmatched  # Body, Kidneys, Aorta, ... are not in the map
    for name in unmatched:
        assert f"{name!r} matches no label of the map" in html.unescape(skipped.group(1))


def _owner(page: Page) -> Any:
    from segmap.server.web.auth import Principal

    with page.world.api.app.state.database.session() as db:
        user = find_user(db, "owner")
        assert user is not None
        return Principal(user.id, user.username, user.is_admin, "token")


def test_browser_uploads_need_the_csrf_header(
    page_data: Page, owner_browser: TestClient, tmp_path: Path
) -> None:
    text = owner_browser.get("/projects/P/sessions").text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', text)
    assert token is not None
    study = write_study(tmp_path, seed=32, patient_id="CSRF", slices=1)
    url = "/api/v1/projects/P/sessions"
    refused = owner_browser.post(url, files=multipart(study.files))
    assert refused.status_code == 403
    accepted = owner_browser.post(
        url, files=multipart(study.files), headers={"X-CSRF-Token": token.group(1)}
    )
    assert accepted.status_code == 201, accepted.text
