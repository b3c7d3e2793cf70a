"""Layout and navigation of the pages (issue 9, "the pages"), measured in Chromium.

- names as long as the service accepts (200 characters; model labels 128) keep every
  page within the window's width: nothing sticks out past the right edge (tables that
  are wider than their card scroll inside it), and a shortened name shows whole as its
  tooltip;
- the Machine Learning dashboard, a model's page and its region-map editor keep the
  project's tabs;
- the Install Model form refuses a spacing in the form's words, not the API's field name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from imaging_data import write_phantom_rtstruct, write_study

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

pytestmark = [
    pytest.mark.browser,
    # The long DICOM values below are too long for their VR on purpose.
    pytest.mark.filterwarnings("ignore:The (PN component|value) length:UserWarning"),
]

PROJECT = "LIVER01"
LONG = 200


def _long(stem: str, length: int = LONG) -> str:
    """A name of ``length`` characters with no space to break it at."""
    return (stem + "-" + "x" * length)[:length]


# Elements whose right edge passes the window's; an element inside a box that clips or
# scrolls (overflow other than visible) is judged by that box instead.
OVERFLOWING = """
() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) { continue; }
    let held = false;
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") { held = true; break; }
    }
    if (!held && box.right > width + 1) {
      out.push(el.tagName.toLowerCase() + "." + el.className + " ends at " + Math.round(box.right));
    }
  }
  return { width: width, scrollWidth: document.documentElement.scrollWidth, out: out.slice(0, 12) };
}
"""


def _assert_fits(page: Any, where: str) -> None:
    found = page.evaluate(OVERFLOWING)
    assert found["out"] == [], f"{where}: wider than the window ({found['width']} px): {found}"
    assert found["scrollWidth"] <= found["width"], f"{where}: the page scrolls sideways: {found}"


@pytest.fixture(scope="module")
def long_names(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project, model, folder, file, session and collection with the longest names."""
    server = live_server
    names: dict[str, Any] = {
        "project": _long("Project"),
        "model": _long("model", 128),
        "description": _long("Description"),
        "folder": _long("folder"),
        "file": _long("file")[: LONG - 4] + ".txt",
        "collection": _long("Reader"),
        "series": _long("Series"),
    }
    r = server.api("POST", "/projects", json={"id": "LONG01", "name": names["project"]})
    assert r.status_code == 201, r.text
    r = server.api(
        "POST",
        "/projects/LONG01/models",
        json={
            "label": names["model"],
            "description": names["description"],
            "voxel_spacing": [1, 1, 1],
        },
    )
    assert r.status_code == 201, r.text
    model_files = f"/projects/LONG01/models/{quote(names['model'])}/resources"
    r = server.api(
        "PUT", f"{model_files}/{quote(names['folder'])}/files/{quote(names['file'])}", content=b"x"
    )
    assert r.status_code == 201, r.text
    root = tmp_path_factory.mktemp("long-names")
    study = write_study(
        root, seed=71, patient_id="P" * 64, series_numbers=(2,), description=names["series"]
    )
    r = server.api(
        "POST", "/projects/LONG01/sessions", files=[("files", p.read_bytes()) for p in study.files]
    )
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    rt = root / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    put = f"/projects/LONG01/sessions/{session['id']}/collections/{quote(names['collection'])}"
    r = server.api("PUT", put, params={"type": "RTSTRUCT"}, content=rt.read_bytes())
    assert r.status_code == 201, r.text
    names["session"] = session["label"]
    names["session_id"] = session["id"]
    return names


def test_pages_with_the_longest_names_stay_within_the_window(
    page: Any, live_server: LiveServer, long_names: dict[str, Any]
) -> None:
    server = live_server
    server.log_in(page, "olivia")
    model = quote(long_names["model"], safe="")
    pages = {
        "projects": "/projects",
        "overview": "/projects/LONG01",
        "sessions": "/projects/LONG01/sessions",
        "session": f"/projects/LONG01/sessions/{long_names['session_id']}",
        "machine learning": "/projects/LONG01/machine-learning",
        "dashboard": "/projects/LONG01/machine-learning/dashboard",
        "model": f"/projects/LONG01/machine-learning/models/{model}",
        "jobs": "/projects/LONG01/jobs",
    }
    for width in (1280, 820):
        page.set_viewport_size({"width": width, "height": 860})
        for where, path in pages.items():
            page.goto(server.url + path)
            _assert_fits(page, f"{where} at {width} px")
        page.goto(server.url + pages["model"])
        page.click("[data-testid=manage-files]")
        page.locator(f"[data-file='{long_names['file']}']").wait_for()
        _assert_fits(page, f"Manage Files at {width} px")


def test_a_shortened_name_shows_whole_as_its_tooltip(
    page: Any, live_server: LiveServer, long_names: dict[str, Any]
) -> None:
    server = live_server
    server.log_in(page, "olivia")
    page.goto(server.url + "/projects/LONG01/sessions")
    link = page.locator(f"a[href='/projects/LONG01/sessions/{long_names['session_id']}']")
    expect(link).to_have_attribute("title", long_names["session"])
    cell = page.locator("[data-role=description] .clip").first
    expect(cell).to_have_attribute("title", long_names["series"] + " 2")
    clipped = cell.evaluate("el => el.scrollWidth > el.clientWidth")
    assert clipped, "the description was expected to be shortened on screen"


@pytest.mark.parametrize(
    ("path", "who"),
    [
        (f"/projects/{PROJECT}/machine-learning/dashboard", "mia"),
        (f"/projects/{PROJECT}/machine-learning/models/tabs-ct", "mia"),
        (f"/projects/{PROJECT}/machine-learning/models/tabs-ct/region-map", "olivia"),
    ],
)
def test_dashboard_and_model_pages_keep_the_project_tabs(
    page: Any, live_server: LiveServer, path: str, who: str
) -> None:
    server = live_server
    if server.api("GET", f"/projects/{PROJECT}/models/tabs-ct").status_code == 404:
        server.create_model("tabs-ct")  # the first case installs it
    server.log_in(page, who)
    page.goto(server.url + path)
    tabs = page.locator("nav.tabs[aria-label=Project] a")
    expect(tabs).to_have_text(["Overview", "Sessions", "Jobs", "Machine Learning", "Viewer"])
    expect(page.get_by_test_id("project-tabs").locator("a.active")).to_have_text("Machine Learning")
    page.click("nav.tabs >> text=Sessions")
    expect(page).to_have_url(f"{server.url}/projects/{PROJECT}/sessions")


def test_install_model_refuses_a_spacing_in_the_forms_words(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.log_in(page, "olivia")
    page.goto(f"{server.url}/projects/{PROJECT}/machine-learning/dashboard")
    page.fill("#label", "spacing-ct")
    page.fill("#spacing_y", "0")
    page.click("[data-testid=install-model-form] button[type=submit]")
    error = page.locator("#install-model .flash.error")
    expect(error).to_contain_text("voxel spacing y")
    assert "voxel_spacing" not in error.inner_text(), error.inner_text()
    assert page.locator("#label").input_value() == "spacing-ct"  # the form is kept
