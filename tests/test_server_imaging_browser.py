"""The session pages in Debian's headless Chromium against the real service (own process).

Upload Session with its progress bar, Upload ROI Collection from the dialog, region names
matched against a model's map, and a conversion's preview and figures on the page. The
conversion is run here with ``segmap.pipeline.convert`` on the files the service stored,
and handed over with ``replace_derived_resource``, exactly as a job does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from imaging_data import multipart, write_phantom_rtstruct, write_study
from segmap.pipeline.convert import ConvertOptions, convert
from segmap.server.db.engine import Database
from segmap.server.db.imaging import RoiCollection
from segmap.server.imaging.collections import collection_file
from segmap.server.imaging.derived import replace_derived_resource
from segmap.server.imaging.lookup import scan_files
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage

MAP = "Liver=10\nSpleen=20\n"


def test_upload_session_and_collection_then_see_the_results(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    server = live_server
    project = server.project_id
    server.create_model("liver-ct")
    r = server.upload("liver-ct", "map", "region2MaskValueMap.txt", MAP.encode())
    assert r.status_code == 201, r.text
    study = write_study(tmp_path / "dicom", seed=41, patient_id="BROWSER", series_numbers=(2,))
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")

    server.log_in(page, "olivia")
    page.goto(f"{server.url}/projects/{project}")
    page.click("nav.tabs >> text=Sessions")
    page.wait_for_url(f"{server.url}/projects/{project}/sessions")
    page.set_input_files("[data-testid=session-files]", [str(p) for p in [*study.files, junk]])
    result = page.locator("[data-testid=session-upload-result]")
    result.wait_for(state="visible")
    bar = page.locator("[data-testid=session-progress-bar]")
    assert bar.evaluate("el => el.style.width") == "100%"
    assert "BROWSER_20240102" in result.inner_text()
    rejected = page.locator("[data-testid=session-rejected]").inner_text()
    assert "notes.txt" in rejected and "not a DICOM file" in rejected

    # The list updates in place once the upload is stored (no reload).
    row = page.locator(f"tr[data-series='{study.series[0].series_instance_uid}']")
    expect(row.locator("[data-role=slices]")).to_have_text(str(len(study.series[0].files)))
    page.click("text=BROWSER_20240102")

    rt = tmp_path / "reader.dcm"
    names = write_phantom_rtstruct(rt, study.series[0])
    page.click("[data-testid=upload-collection-button]")
    page.fill("[data-testid=collection-label]", "Reader 1")
    page.set_input_files("[data-testid=collection-file]", str(rt))
    with page.expect_navigation():
        page.click("[data-testid=collection-submit]")
    for name in names:
        cell = page.locator(f"tr[data-region='{name}'] td[data-model='liver-ct']")
        expected = "matched" if name in ("Liver", "Spleen") else "unmatched"
        assert cell.locator("[data-match]").inner_text() == expected, name

    # The same label again without "replace" is refused with the service's reason.
    page.click("[data-testid=upload-collection-button]")
    page.fill("[data-testid=collection-label]", "Reader 1")
    page.set_input_files("[data-testid=collection-file]", str(rt))
    page.click("[data-testid=collection-submit]")
    problems = page.locator("#upload-collection [data-role=problems]")
    problems.wait_for(state="visible")
    assert "Replace a collection with this label" in problems.inner_text()

    report = _convert_like_a_job(server.data_dir, tmp_path / "out")
    page.reload()
    image = page.locator("[data-testid=preview-image]")
    image.wait_for(state="visible")
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=image.element_handle())
    figures = page.locator("[data-testid=report-figures]")
    for region in report["regions"]:
        row = figures.locator(f"tr[data-region='{region['name']}']")
        assert row.locator("[data-role=voxels]").inner_text() == str(region["voxels"])
        assert row.locator("[data-role=volume]").inner_text() == (
            f"{region['volume_mm3'] / 1000:.2f} mL"
        )


def _convert_like_a_job(data_dir: Path, out: Path) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir)
    database = Database(settings.effective_database_url)
    storage = LocalStorage(settings.storage_dir)
    try:
        with database.session(write=True) as db:
            collection = db.scalars(
                select(RoiCollection).where(RoiCollection.label == "Reader 1")
            ).one()
            images = scan_files(db, storage, collection.scan_id)
            (out.parent / "map.txt").write_text(MAP)
            convert(
                out.parent / "map.txt",
                images[0].parent,
                collection_file(db, storage, collection),
                out,
                ConvertOptions(spacing=(2.0, 2.0, 2.5)),
            )
            files = {p.name: p for p in out.iterdir()}
            replace_derived_resource(db, storage, collection.scan_id, "liver-ct", files)
    finally:
        database.dispose()
    return dict(json.loads((out / "report.json").read_text()))


def test_collaborator_sees_sessions_but_no_upload(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path, seed=42, patient_id="COLLAB", series_numbers=(3,), slices=2)
    r = server.api("POST", f"/projects/{server.project_id}/sessions", files=multipart(study.files))
    assert r.status_code == 201, r.text
    server.log_in(page, "colin")
    page.goto(f"{server.url}/projects/{server.project_id}/sessions")
    assert page.locator("[data-testid=upload-session]").count() == 0
    page.click("text=COLLAB_20240102")
    page.locator("[data-testid=scans-table]").wait_for()
    assert page.locator("[data-testid=upload-collection-button]").count() == 0
    assert page.locator("#upload-collection").count() == 0
