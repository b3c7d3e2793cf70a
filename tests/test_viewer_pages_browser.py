"""The real OHIF's save, in real headless Chromium against a real ``segmap serve``, is
recorded as stored through OHIF; the Viewer tab opens OHIF's study list on the project.

The viewer is opened as a person opens it (the session page's Open in OHIF); the save is
OHIF's own: its DICOMweb data source's ``store.dicom`` (what OHIF's "Export / Store"
calls after painting), given a SEG of the study. The painting itself is the journey
tests' part; here only the route the file arrives by matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from playwright.sync_api import expect

from browser_fixtures import LiveServer
from imaging_data import multipart, write_seg, write_study

# OHIF puts its extension manager on window (app init); its active data source is the
# one the route names (/ohif/<mode>/<dataSourceName>): activeDataSourceName.
READY = """project => {
  const manager = window.extensionManager;
  if (!manager || manager.activeDataSourceName !== project) return false;
  const [source] = manager.getActiveDataSource() || [];
  // The data source is initialised (credentials, roots) by the time the study's display
  // sets exist: they come from its QIDO and WADO answers.
  const sets = window.services && window.services.displaySetService;
  return !!source && !!sets && sets.getActiveDisplaySets().length > 0;
}"""
STORE = """async bytes => {
  const [source] = window.extensionManager.getActiveDataSource();
  await source.store.dicom(new Uint8Array(bytes).buffer);
  return true;
}"""


def test_a_segmentation_saved_by_ohif_is_shown_as_stored_through_ohif(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path / "study", seed=51, patient_id="OHIFSAVE")
    r = server.api("POST", f"/projects/{server.project_id}/sessions", files=multipart(study.files))
    assert r.status_code == 201, r.text
    session_id = r.json()["sessions"][0]["id"]
    seg_path = write_seg(tmp_path / "seg.dcm", study.series[0], ["Liver"])
    seg = pydicom.dcmread(seg_path)
    seg.SeriesDescription = "Painted in OHIF"
    seg.save_as(seg_path)

    server.log_in(page, "olivia")
    page.goto(f"{server.url}/projects/{server.project_id}/sessions/{session_id}")
    page.get_by_test_id("open-in-ohif").first.click()
    page.wait_for_url(f"{server.url}/ohif/segmentation/{server.project_id}?**")
    page.wait_for_function(READY, arg=server.project_id, timeout=60_000)
    assert page.evaluate(STORE, list(seg_path.read_bytes())) is True

    listed = server.api("GET", f"/projects/{server.project_id}/sessions/{session_id}/collections")
    assert listed.status_code == 200, listed.text
    assert [(c["label"], c["stored_by"], c["stored_via"]) for c in listed.json()] == [
        ("Painted in OHIF", "olivia", "ohif")
    ]
    page.goto(f"{server.url}/projects/{server.project_id}/sessions/{session_id}")
    provenance = page.locator("[data-collection='Painted in OHIF'] [data-role=provenance]")
    expect(provenance).to_have_attribute("data-via", "ohif")
    expect(provenance).to_have_text("stored by olivia through OHIF")


def test_viewer_tab_opens_ohifs_study_list_on_the_project(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    study = write_study(tmp_path / "study", seed=52, patient_id="TABLIST")
    r = server.api("POST", f"/projects/{server.project_id}/sessions", files=multipart(study.files))
    assert r.status_code == 201, r.text
    server.log_in(page, "mia")
    page.goto(f"{server.url}/projects/{server.project_id}/sessions")
    page.get_by_test_id("project-tabs").get_by_text("Viewer").click()
    page.wait_for_url(f"{server.url}/ohif/?dataSources={server.project_id}")
    # OHIF's study list shows the project's study (its patient ID) once QIDO answered.
    expect(page.get_by_text("TABLIST").first).to_be_visible(timeout=60_000)
