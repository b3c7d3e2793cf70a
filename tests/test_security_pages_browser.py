"""The session pages as a browser user meets them (issue 9, "the pages"), in Chromium.

Against the real service in its own process:
- an upload through the Sessions tab updates the list in place (no reload);
- refusals are told in words, never in API syntax (``?type=``, ``overwrite=true``);
- a scan is named the same way everywhere: ``Scan 1 (series 3)``, the id its URLs use;
- the Upload ROI Collection icon is drawn (no missing glyph);
- every derived download is named after its session, scan and model, also when the
  model's name is not ASCII, and a name with quotes or reserved characters is made safe.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from fontTools.ttLib import TTFont
from playwright.sync_api import expect
from sqlalchemy import select

from imaging_data import write_phantom_rtstruct, write_study
from segmap.server.db.engine import Database
from segmap.server.db.imaging import Scan
from segmap.server.imaging.derived import replace_derived_resource
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

pytestmark = pytest.mark.browser

API_SYNTAX = re.compile(r"\?type=|overwrite=|/api/v1|\bPUT\b|\bPOST\b|type=(RTSTRUCT|SEG)")


def _sessions_page(server: LiveServer) -> str:
    return f"{server.url}/projects/{server.project_id}/sessions"


def test_an_upload_updates_the_list_without_a_reload_and_speaks_in_words(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path / "dicom", seed=61, patient_id="REFRESH", series_numbers=(3,))
    rt = tmp_path / "drawn.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    server.log_in(page, "olivia")
    page.goto(_sessions_page(server))
    count = page.locator(".card-head", has_text="Imaging Sessions").locator("span")
    expect(count).to_have_text("0 sessions")
    page.evaluate("() => { window.notReloaded = true; }")

    page.set_input_files("[data-testid=session-files]", [str(p) for p in [*study.files, rt]])
    page.locator("[data-testid=session-upload-result]").wait_for(state="visible")
    expect(count).to_have_text("1 session")
    row = page.locator(f"tr[data-series='{study.series[0].series_instance_uid}']")
    expect(row.locator("[data-role=slices]")).to_have_text(str(len(study.series[0].files)))
    assert page.evaluate("() => window.notReloaded") is True, "the page was reloaded"

    # The RTSTRUCT sent with the images is refused with the page's way to upload it.
    rejected = page.locator("[data-testid=session-rejected]").inner_text()
    assert "drawn.dcm" in rejected and "Upload ROI Collection" in rejected, rejected
    assert not API_SYNTAX.search(rejected), rejected
    # The API keeps its own wording for scripts.
    answer = server.api(
        "POST", f"/projects/{server.project_id}/sessions", files=[("files", rt.read_bytes())]
    )
    assert "?type=RTSTRUCT" in answer.text, answer.text


def _open_session(page: Any, server: LiveServer, label: str) -> None:
    page.goto(_sessions_page(server))
    page.click(f"text={label}")
    page.locator("[data-testid=scans-table]").wait_for()


def test_collection_refusals_name_the_dialog_controls_not_the_api(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path / "dicom", seed=62, patient_id="WORDS", series_numbers=(4,))
    r = server.api(
        "POST",
        f"/projects/{server.project_id}/sessions",
        files=[("files", p.read_bytes()) for p in study.files],
    )
    assert r.status_code == 201, r.text
    rt = tmp_path / "reader.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    server.log_in(page, "olivia")
    _open_session(page, server, "WORDS_20240102")
    problems = page.locator("#upload-collection [data-role=problems]")

    def submit(label: str, kind: str) -> None:
        page.click("[data-testid=upload-collection-button]")
        page.fill("[data-testid=collection-label]", label)
        page.set_input_files("[data-testid=collection-file]", str(rt))
        page.select_option("[data-testid=collection-type]", kind)
        page.click("[data-testid=collection-submit]")

    submit("Reader 1", "SEG")  # it is an RTSTRUCT
    problems.wait_for(state="visible")
    text = problems.inner_text()
    assert "choose RTSTRUCT as its Type" in text and not API_SYNTAX.search(text), text

    page.select_option("[data-testid=collection-type]", "RTSTRUCT")
    with page.expect_navigation():
        page.click("[data-testid=collection-submit]")
    submit("Reader 1", "RTSTRUCT")  # the label is taken
    expect(problems).to_contain_text("Replace a collection with this label")
    assert not API_SYNTAX.search(problems.inner_text()), problems.inner_text()


def _scan_id(server: LiveServer, series_uid: str) -> int:
    database = Database(Settings(data_dir=server.data_dir).effective_database_url)
    try:
        with database.session() as db:
            return int(db.scalar(select(Scan.id).where(Scan.series_instance_uid == series_uid)))
    finally:
        database.dispose()


def _derive(server: LiveServer, scan_id: int, folder: str, tmp_path: Path) -> None:
    """Put a derived folder on the scan exactly as a job hands its outputs over."""
    out = tmp_path / folder
    out.mkdir()
    (out / "mask.nii.gz").write_bytes(b"\x1f\x8b mask bytes")
    (out / "report.json").write_text("{}")
    settings = Settings(data_dir=server.data_dir)
    database = Database(settings.effective_database_url)
    try:
        with database.session(write=True) as db:
            files = {p.name: p for p in out.iterdir()}
            replace_derived_resource(db, LocalStorage(settings.storage_dir), scan_id, folder, files)
    finally:
        database.dispose()


def _session_with_results(
    server: LiveServer, tmp_path: Path, patient: str, seed: int
) -> tuple[int, str]:
    """A session (series 7) with an ROI collection and two models' derived folders;
    returns the scan's id and its SeriesInstanceUID."""
    study = write_study(tmp_path / "dicom", seed=seed, patient_id=patient, series_numbers=(7,))
    r = server.api(
        "POST",
        f"/projects/{server.project_id}/sessions",
        files=[("files", p.read_bytes()) for p in study.files],
    )
    assert r.status_code == 201, r.text
    series = study.series[0]
    scan_id = _scan_id(server, series.series_instance_uid)
    assert scan_id != 7  # so the two numbers cannot be mixed up unseen
    rt = tmp_path / "reader.dcm"
    write_phantom_rtstruct(rt, series)
    session_id = r.json()["sessions"][0]["id"]
    put = f"/projects/{server.project_id}/sessions/{session_id}/collections/Reader?type=RTSTRUCT"
    assert server.api("PUT", put, content=rt.read_bytes()).status_code == 201
    _derive(server, scan_id, "liver-ct", tmp_path)
    _derive(server, scan_id, "Lebér ct", tmp_path)
    return scan_id, series.series_instance_uid


def test_a_scan_is_named_by_the_id_its_urls_use_with_its_series_beside(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    scan_id, series_uid = _session_with_results(server, tmp_path, "NAMES", 63)
    server.log_in(page, "mia")
    _open_session(page, server, "NAMES_20240102")
    name = f"Scan {scan_id} (series 7)"
    row = page.locator(f"[data-testid=scans-table] tr[data-series='{series_uid}']")
    expect(row.locator("td").first).to_have_text(name)
    expect(page.locator("section.collection p.small").first).to_contain_text(f"On {name}")
    headings = page.locator("section.derived h3 span").all()
    assert len(headings) == 2
    for heading in headings:
        expect(heading).to_contain_text(f"on {name}")
    body = page.locator("main").inner_text()
    assert "#7" not in body and "scan 7" not in body.lower(), body
    page.goto(_sessions_page(server))
    sessions_row = page.locator(f"[data-testid=sessions-table] tr[data-series='{series_uid}']")
    expect(sessions_row).to_contain_text(name)


def test_downloads_are_named_after_session_scan_and_model(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    scan_id, _series_uid = _session_with_results(server, tmp_path, "FILES", 65)
    server.log_in(page, "mia")  # a member: reads and downloads
    _open_session(page, server, "FILES_20240102")
    downloads = {}
    for folder in ("liver-ct", "Lebér ct"):
        link = page.locator(f"section[data-folder='{folder}'] a.fname")
        with page.expect_download() as info:
            link.filter(has_text="mask.nii.gz").click()
        downloads[folder] = info.value.suggested_filename
    assert downloads == {
        "liver-ct": f"FILES_20240102_scan{scan_id}_liver-ct_mask.nii.gz",
        "Lebér ct": f"FILES_20240102_scan{scan_id}_Lebér ct_mask.nii.gz",
    }
    # Old clients get an ASCII name; RFC 5987's filename* carries the real one.
    link = page.locator("section[data-folder='Lebér ct'] a.fname").filter(has_text="report.json")
    href = str(link.get_attribute("href"))
    answer = server.api("GET", href.removeprefix("/api/v1"), username="mia")
    disposition = answer.headers["content-disposition"]
    expected = f"FILES_20240102_scan{scan_id}_Leb_r ct_report.json"
    assert f'filename="{expected}"' in disposition, disposition
    encoded = f"FILES_20240102_scan{scan_id}_Leb%C3%A9r%20ct_report.json"
    assert f"filename*=UTF-8''{encoded}" in disposition, disposition


def test_a_download_name_with_quotes_and_other_scripts_is_made_safe(
    live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path / "dicom", seed=66, patient_id="QUOTE", series_numbers=(2,))
    files = [("files", p.read_bytes()) for p in study.files]
    r = server.api("POST", f"/projects/{server.project_id}/sessions", files=files)
    assert r.status_code == 201, r.text
    scan = _scan_id(server, study.series[0].series_instance_uid)
    folder = 'say "hi"; Ünï*code'
    _derive(server, scan, folder, tmp_path)
    session = r.json()["sessions"][0]["id"]
    path = f"/projects/{server.project_id}/sessions/{session}/scans/{scan}/resources"
    answer = server.api("GET", f"{path}/{quote(folder, safe='')}/files/mask.nii.gz")
    assert answer.status_code == 200, answer.text
    stem = f"QUOTE_20240102_scan{scan}_say _hi_; "
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="{stem}_n__code_mask.nii.gz"; '
        f"filename*=UTF-8''{quote(stem + 'Ünï_code_mask.nii.gz', safe='')}"
    )


def _font_file(family: str) -> Path:
    """The file fontconfig (which Chromium uses on Linux) gives for ``family``."""
    found = subprocess.run(
        ["fc-match", "-f", "%{file}", family], capture_output=True, text=True, check=True
    )
    return Path(found.stdout.strip())


def test_action_icons_are_drawn_by_the_font_the_page_uses_or_are_pictures(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path, seed=64, patient_id="ICONS", series_numbers=(2,), slices=2)
    r = server.api(
        "POST",
        f"/projects/{server.project_id}/sessions",
        files=[("files", p.read_bytes()) for p in study.files],
    )
    assert r.status_code == 201, r.text
    server.log_in(page, "olivia")
    _open_session(page, server, "ICONS_20240102")
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    icons = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": ".actions-box .icon"})
    assert icons["nodeIds"], "no icons on the page?"
    checked = 0
    for node in icons["nodeIds"]:
        html = cdp.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"]
        if "<svg" in html:
            continue  # a picture needs no font
        text = re.sub(r"<[^>]+>", "", html).strip()
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        assert fonts, html
        cmap = TTFont(_font_file(fonts[0]["familyName"])).getBestCmap()
        missing = [c for c in text if ord(c) not in cmap]
        assert not missing, f"{html}: {missing} not in {fonts[0]['familyName']}"
        checked += 1
    upload = page.locator(".actions-box [data-open-dialog=upload-collection] .icon svg")
    expect(upload).to_be_visible()
    assert checked >= 2
