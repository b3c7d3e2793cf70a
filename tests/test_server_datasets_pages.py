"""The Datasets tab of a model and a dataset's QA page (TestClient, both backends).

Four phantom cases are uploaded and converted: one ten times the others' volumes, one
without the Spleen and with a Stomach the map does not hold. A dataset is created through
the page's form (with its CSRF token); its page must show the QA's numbers -- per-region
counts, the flagged outlier, the missing region, the unmatched name -- the pictures and a
download per format, and the numbers must be those of the API's QA report.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from segmap import testing as syn
from server_fixtures import PASSWORD, World
from test_jobs_api import put_map, wait_for_jobs
from test_server_datasets import VALUES, upload

TENFOLD = 10 ** (1 / 3)  # a grid this much coarser: the same voxels, ten times the volume
PAGE = "/projects/P/machine-learning/models/liver-ct"


def phantom(
    root: Path,
    seed: int,
    patient: str,
    spacing: tuple[float, float, float] = (1.5, 1.5, 3.0),
    *,
    size: tuple[int, int, int] = (48, 40, 8),
    drop: tuple[str, ...] = (),
    extra: tuple[syn.SyntheticROI, ...] = (),
) -> syn.SyntheticCase:
    """A phantom CT with an RTSTRUCT of its regions (less ``drop``, plus ``extra``)."""
    grid = syn.axial_grid(size, spacing)
    identity = syn.StudyIdentity.generate(seed, patient)
    volume = syn.render_phantom_ct(grid, noise_hu=0.0, seed=seed)
    series = syn.write_ct_series(root / "ct", grid, volume, identity=identity, seed=seed)
    rois = tuple(r for r in syn.phantom_rois(grid) if r.name not in drop)
    path = root / "rtstruct.dcm"
    syn.write_rtstruct(path, series, rois + extra, seed=seed)
    return syn.SyntheticCase(series, path, root / "map.txt", rois, dict(VALUES))


@pytest.fixture()
def qa_world(world: World, tmp_path: Path) -> World:
    r = world.client.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    put_map(world, "liver-ct", VALUES)
    grid = syn.axial_grid((46, 40, 8), (1.5, 1.5, 3.0))
    liver = next(r for r in syn.phantom_rois(grid) if r.name == "Liver")
    stomach = syn.SyntheticROI("Stomach", (200, 200, 0), liver.contours)
    cases = [
        phantom(tmp_path / "a", 51, "PA"),
        phantom(tmp_path / "b", 52, "PB", size=(46, 40, 8)),
        phantom(tmp_path / "c", 53, "PC", size=(46, 40, 8), drop=("Spleen",), extra=(stomach,)),
        phantom(tmp_path / "d", 54, "PD", (1.5 * TENFOLD, 1.5 * TENFOLD, 3.0 * TENFOLD)),
    ]
    for case in cases:
        upload(world, case)
    jobs = wait_for_jobs(world, len(cases))
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    return world


@pytest.fixture()
def browser(world: World) -> Iterator[Any]:
    """A TestClient logged in through the log-in form, for any user of the world."""
    clients: list[TestClient] = []

    def log_in(username: str) -> TestClient:
        client = TestClient(world.api.app).__enter__()
        clients.append(client)
        r = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": _token(client)},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return client

    yield log_in
    for client in clients:
        client.__exit__(None, None, None)


def _token(client: TestClient, url: str = "/login") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text)
    assert found is not None, url
    return found.group(1)


def _text(page: str) -> str:
    """A page's text without tags, spaces collapsed (to find numbers in it)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _wait_ready(world: World, name: str) -> dict[str, Any]:
    url = f"{world.model_url}/datasets/{name}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        data: dict[str, Any] = world.client.get(url, headers=world.h("member")).json()
        if data["state"] in ("ready", "failed"):
            return data
        time.sleep(0.2)
    raise AssertionError(f"dataset {name} did not finish")


def test_the_datasets_tab_creates_a_dataset_and_its_page_shows_the_qa(
    qa_world: World, browser: Any
) -> None:
    world = qa_world
    owner = browser("owner")
    model_page = owner.get(PAGE)
    assert model_page.status_code == 200
    tab = re.search(r'<a href="([^"]+)"[^>]*data-testid="model-tab-datasets"', model_page.text)
    assert tab is not None and tab.group(1) == f"{PAGE}/datasets"
    listing = owner.get(tab.group(1))
    assert listing.status_code == 200 and 'data-testid="no-datasets"' in listing.text
    assert 'data-testid="create-dataset-form"' in listing.text
    form = {"name": "Qa", "dataset_id": "504", "folds": "2", "seed": "0", "subject": ""}
    r = owner.post(f"{PAGE}/datasets", data=form, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    form["csrf_token"] = _token(owner, f"{PAGE}/datasets")
    r = owner.post(f"{PAGE}/datasets", data={**form, "name": "not valid"}, follow_redirects=False)
    assert r.status_code == 422 and "Name: dataset name &#39;not valid&#39;" in r.text, r.text
    assert 'value="not valid"' in r.text  # the form comes back as it was
    r = owner.post(f"{PAGE}/datasets", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}/datasets/Qa", r.text
    data = _wait_ready(world, "Qa")
    assert data["state"] == "ready", data["error"]
    qa = data["qa"]

    page = owner.get(f"{PAGE}/datasets/Qa")
    assert page.status_code == 200
    text = _text(page.text)
    assert 'aria-current="page" data-testid="model-tab-datasets"' in page.text
    assert 'data-testid="dataset-state">ready<' in page.text
    assert re.search(r'data-testid="case-count">4 from 4 subjects<', page.text)
    # Per region: how many cases have it, and the median volume, as the QA report says.
    for region in qa["regions"]:
        row = re.search(rf'<tr data-region="{region["name"]}">(.*?)</tr>', page.text, re.S)
        assert row is not None, region["name"]
        cells = _text(row.group(1))
        assert f"{region['cases_with']} of 4" in cells
        assert f"{region['median_ml']:g}" in cells
    spleen = next(r for r in qa["regions"] if r["name"] == "Spleen")
    assert spleen["cases_with"] == 3
    # The tenfold case is flagged (its Body and Liver at least), and no other case is.
    by_session = {m["session"]: m["name"] for m in data["manifest"]["cases"]}
    tenfold = next(name for session, name in by_session.items() if session.startswith("PD"))
    flagged = {(o["case"], o["region"]) for o in qa["outliers"]}
    assert {(tenfold, "Body"), (tenfold, "Liver")} <= flagged
    assert {case for case, _region in flagged} == {tenfold}
    outliers = re.search(r'data-testid="qa-outliers">(.*?)</table>', page.text, re.S)
    assert outliers is not None and _text(outliers.group(1)).count(tenfold) == len(flagged)
    missing = re.search(r'data-testid="qa-missing">(.*?)</table>', page.text, re.S)
    dropped = by_session[next(s for s in by_session if s.startswith("PC"))]
    assert missing is not None and f"{dropped} Spleen 3 of 4" in _text(missing.group(1))
    unmatched = re.search(r'data-testid="qa-unmatched">(.*?)</table>', page.text, re.S)
    assert unmatched is not None and "Stomach 1" in _text(unmatched.group(1))
    assert "None: one collection per scan." in text
    # One picture per region, served to the logged-in page as PNG.
    pictures = re.findall(r'<img class="qa-plot" src="([^"]+)"', page.text)
    assert len(pictures) == len(VALUES)
    png = owner.get(html.unescape(pictures[0]))
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    # A download per format, each a zip.
    for fmt in ("nnunet", "monai", "msd"):
        link = re.search(rf'<a href="([^"]+)" download data-testid="download-{fmt}">', page.text)
        assert link is not None, fmt
        got = owner.get(html.unescape(link.group(1)))
        assert got.status_code == 200 and got.content[:4] == b"PK\x03\x04", fmt
    listing = owner.get(f"{PAGE}/datasets")
    row = re.search(r'<tr data-dataset="Qa" data-state="ready">(.*?)</tr>', listing.text, re.S)
    assert row is not None and " 4 " in _text(row.group(1))


def test_members_see_datasets_but_no_form_and_outsiders_are_refused(
    world: World, browser: Any
) -> None:
    put_map(world, "liver-ct", VALUES)
    r = world.client.post(
        f"{world.model_url}/datasets", json={"name": "Seen"}, headers=world.h("owner")
    )
    assert r.status_code == 202, r.text
    member = browser("member")
    listing = member.get(f"{PAGE}/datasets")
    assert listing.status_code == 200 and 'data-dataset="Seen"' in listing.text
    assert 'data-testid="create-dataset-form"' not in listing.text
    assert member.get(f"{PAGE}/datasets/Seen").status_code == 200
    token = _token(member, f"{PAGE}/datasets")
    r = member.post(
        f"{PAGE}/datasets",
        data={"csrf_token": token, "name": "Mine", "dataset_id": "1", "folds": "2", "seed": "0"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "only project owners" in r.text.lower()
    outsider = browser("outsider")
    model_page = outsider.get(PAGE)
    assert model_page.status_code == 403 and "not a member of project" in model_page.text
    for path in ("/datasets", "/datasets/Seen", "/datasets/Missing"):
        r = outsider.get(PAGE + path)
        assert r.status_code == 403 and "not a member of project" in r.text, path
