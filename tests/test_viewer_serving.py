"""OHIF served at /ohif/: files, cache headers, SPA fallback, log-in, not installed.

Against the real dist that set-up installs (scripts/install-ohif.py) and the real app.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from segmap.server.app import create_app
from segmap.server.settings import Settings
from segmap.server.viewer.dist import default_dist_dir, find_dist
from server_fixtures import World


@pytest.fixture(scope="module")
def dist_dir() -> Path:
    dist = find_dist()
    assert dist is not None, (
        f"the OHIF dist is not installed in {default_dist_dir()}: run "
        ".venv/bin/python scripts/install-ohif.py (set-up does it)"
    )
    return dist.root


def test_viewer_routes_answer_index_html_after_log_in(world: World, dist_dir: Path) -> None:
    index = (dist_dir / "index.html").read_bytes()
    # The install rewrote the public path: the page loads its bundles from /ohif/.
    assert b'window.PUBLIC_URL="/ohif/"' in index
    for path in ("/ohif/", "/ohif/segmentation/P", "/ohif/viewer?StudyInstanceUIDs=1.2.3"):
        r = world.client.get(path, headers=world.h("member"))
        assert r.status_code == 200, path
        assert r.content == index
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["content-type"].startswith("text/html")


def test_anonymous_visitor_is_sent_to_log_in_and_back(world: World, dist_dir: Path) -> None:
    r = world.client.get("/ohif/segmentation/P?StudyInstanceUIDs=1.2", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    assert "%2Fohif%2Fsegmentation%2FP" in r.headers["location"]
    assert world.client.get("/ohif", follow_redirects=False).headers["location"] == "/ohif/"


def test_hashed_bundles_are_cached_for_a_year_others_revalidate(
    world: World, dist_dir: Path
) -> None:
    bundle = next(dist_dir.glob("app.bundle.*.js"))
    assert re.search(r"\.[0-9a-f]{16,}\.js$", bundle.name)
    r = world.client.get(f"/ohif/{bundle.name}")
    assert r.status_code == 200
    assert r.content == bundle.read_bytes()  # served as installed, without log-in
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    manifest = world.client.get("/ohif/manifest.json")
    assert manifest.status_code == 200
    assert manifest.headers["cache-control"] == "no-cache"


def test_missing_files_and_paths_out_of_the_dist_are_404(world: World, dist_dir: Path) -> None:
    h = world.h("member")
    assert (
        world.client.get("/ohif/no-such-bundle.0123456789abcdef.js", headers=h).status_code == 404
    )
    for path in (
        "/ohif/%2e%2e/%2e%2e/etc/passwd",
        "/ohif/..%2f..%2fetc%2fpasswd",
        "/ohif/.segmap-install.json",
    ):
        r = world.client.get(path, headers=h)
        assert b"root:" not in r.content and b"integrity" not in r.content, path
        assert r.status_code in (200, 404), path  # 200 only as index.html (an OHIF route)
        if r.status_code == 200:
            assert r.content == (dist_dir / "index.html").read_bytes(), path


def test_without_the_dist_the_pages_say_how_to_install_it(
    tmp_path: Path, settings: Settings
) -> None:
    app: Any = create_app(replace(settings, ohif_dir=tmp_path / "empty"))
    try:
        with TestClient(app) as client:
            r = client.get("/ohif/")
            assert r.status_code == 503
            assert "not installed" in r.text and "scripts/install-ohif.py" in r.text
    finally:
        app.state.database.dispose()


def test_session_page_offers_open_in_ohif_plain_and_per_model(
    world: World, dist_dir: Path, tmp_path: Path
) -> None:
    from jobs_helpers import small_case
    from segmap import testing as syn
    from test_jobs_api import put_map, upload_case

    put_map(world, "liver-ct", syn.PHANTOM_REGION_VALUES)
    case = small_case(tmp_path / "case", 7)
    up = upload_case(world, case)
    page = world.client.get(
        f"/projects/P/sessions/{up['session']['id']}", headers=world.h("member")
    )
    assert page.status_code == 200
    links = [
        html.unescape(u)
        for u in re.findall(r'href="([^"]+)" data-testid="open-in-ohif"', page.text)
    ]
    study = up["session"]["study_instance_uid"]
    assert links == [
        f"/ohif/segmentation/P?StudyInstanceUIDs={study}",
        f"/ohif/segmentation/P?StudyInstanceUIDs={study}&segmapProject=P&segmapModel=liver-ct",
    ]
    # The plain link is an OHIF route: index.html after log-in.
    assert (
        world.client.get(links[0], headers=world.h("member")).content
        == (dist_dir / "index.html").read_bytes()
    )
