"""The project's Archive page in Chromium, on a real ``segmap serve`` and a real Orthanc.

The owner opens it from the project page, tests a wrong password (the refused-credentials
message) and the right one (the success message, naming the Orthanc version Orthanc
itself reports), saves, and, once Orthanc holds a CT and an RTSTRUCT, sees the follower's
state on the page: the last contact, no error, the import and its row in "What happened".
A member has no way to the page and cannot change the connection with a form of their own.

The server and the browser come from ``browser_fixtures`` (SQLite; the follower at its
normal pace). A screenshot of the page after the import is taken every run; with
``SEGMAP_ARCHIVE_REGENERATE=1`` it is written to ``docs/img/archive-page.png`` (the
picture in docs/archive.md), else into the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pydicom
import pytest
from playwright.sync_api import expect

from archive_helpers import orthanc_server, wait_for
from jobs_helpers import small_case
from segmap.testing.orthanc import Credentials, OrthancServer

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

pytestmark = pytest.mark.browser

PROJECT_ID = "LIVER01"
SECRET = "pacs-Secret-3141"
CREDS = Credentials("segmap", SECRET)
DOC_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "img"
REGENERATE = os.environ.get("SEGMAP_ARCHIVE_REGENERATE") == "1"


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path, credentials=CREDS)


def connection(server: LiveServer) -> dict[str, Any] | None:
    """The project's connection as its owner reads it from the API; None when none."""
    answer = server.api("GET", f"/projects/{PROJECT_ID}/archive")
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def settings_of(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """What an owner set of a connection (not the follower's state, which moves)."""
    keys = ("kind", "url", "username", "has_password", "push_masks", "prefetch_images", "filter")
    return None if found is None else {k: found[k] for k in keys}


def fill_connection(page: Any, orthanc: OrthancServer, password: str) -> None:
    """Type the Orthanc connection into the page's form."""
    page.select_option("#archive-kind", "orthanc")
    page.fill("#archive-url", orthanc.url)
    page.fill("#archive-username", CREDS.username)
    page.fill("#archive-password", password)


def test_owner_connects_tests_and_follows_from_the_page(
    page: Any, live_server: LiveServer, orthanc: OrthancServer, tmp_path: Path
) -> None:
    server = live_server
    version = httpx.get(f"{orthanc.url}/system", auth=orthanc.auth).json()["Version"]
    server.log_in(page, "olivia")
    page.goto(f"{server.url}/projects/{PROJECT_ID}")
    page.click("[data-testid=archive-link]")
    expect(page).to_have_url(f"{server.url}/projects/{PROJECT_ID}/archive")
    expect(page.locator("[data-testid=archive-state]")).to_contain_text("Not connected")

    # A wrong password: Test connection says the archive refused the credentials.
    fill_connection(page, orthanc, "not-the-password")
    page.click("[data-testid=archive-test]")
    diagnosis = page.locator("[data-testid=archive-diagnosis]")
    expect(diagnosis).to_have_class("flash error")
    expect(diagnosis).to_contain_text("Credentials refused")
    expect(diagnosis).to_contain_text("refused the credentials")
    expect(diagnosis).not_to_contain_text("not-the-password")
    expect(page.locator("#archive-url")).to_have_value(orthanc.url)  # kept for the next try
    expect(page.locator("#archive-password")).to_have_value("")  # never sent back
    assert connection(server) is None  # testing saves nothing

    # The right one: the success message, naming what answered.
    page.fill("#archive-password", SECRET)
    page.click("[data-testid=archive-test]")
    expect(diagnosis).to_have_class("flash success")
    expect(diagnosis).to_contain_text(f"Connected: {orthanc.url} is Orthanc {version}")

    # Save: the follower starts.
    page.fill("#archive-password", SECRET)
    page.click("[data-testid=archive-save]")
    expect(page.locator(".flash.success")).to_contain_text("Saved: the archive is followed")
    expect(page.locator("label[for=archive-password]")).to_contain_text("stored; blank keeps it")
    saved = connection(server)
    assert saved is not None and saved["has_password"] and saved["username"] == CREDS.username

    # Orthanc gets a CT and an RTSTRUCT; the follower imports them.
    case = small_case(tmp_path / "case", 81)
    orthanc.store_files([*case.series.files, case.rtstruct_path])
    series = pydicom.dcmread(case.rtstruct_path, stop_before_pixels=True).SeriesInstanceUID
    wait_for("the import", lambda: (c := connection(server)) and c["imported"] == 1)

    # The page shows the follower's state: contact, no error, the import and its row.
    page.reload()
    contact = page.locator("[data-testid=archive-last-contact]")
    expect(contact).to_contain_text("UTC")
    expect(page.locator("[data-testid=archive-last-error]")).to_have_text("none")
    expect(page.locator("[data-testid=archive-imported]")).to_contain_text("1 series · last")
    row = page.locator("[data-testid=archive-events] tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("imported")
    expect(row).to_contain_text("RTSTRUCT")
    expect(row).to_contain_text(str(series))
    expect(row).to_contain_text(f"{len(case.series.files)} image instance(s)")
    assert SECRET not in page.content()
    shots = DOC_IMAGES if REGENERATE else tmp_path
    shot = shots / "archive-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_a_member_cannot_reach_or_change_the_archive(page: Any, live_server: LiveServer) -> None:
    server = live_server
    before = settings_of(connection(server))
    server.log_in(page, "mia")
    page.goto(f"{server.url}/projects/{PROJECT_ID}")
    expect(page.locator("[data-testid=project-role]")).to_have_text("member")
    expect(page.locator("[data-testid=archive-link]")).to_have_count(0)

    answer = page.goto(f"{server.url}/projects/{PROJECT_ID}/archive")
    assert answer is not None and answer.status == 403
    expect(page.locator("[data-testid=error-page]")).to_contain_text("Only project owners")
    expect(page.locator("[data-testid=archive-form]")).to_have_count(0)

    # Her own valid token in a form of her making changes nothing either.
    token = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    archive = f"{server.url}/projects/{PROJECT_ID}/archive"
    forms = [
        ("save", {"kind": "orthanc", "url": "http://127.0.0.1:1", "username": "mia"}),
        ("test", {"kind": "orthanc", "url": "http://127.0.0.1:1"}),
        ("disconnect", {}),
        ("import", {"level": "study", "uid": "1.2.3.4"}),
    ]
    for action, form in forms:
        answer = page.request.post(
            f"{archive}/{action}", form={"csrf_token": token, **form}, max_redirects=0
        )
        assert answer.status == 403, (action, answer.status)
        assert "Only project owners" in answer.text()
    assert settings_of(connection(server)) == before
