"""The whole journey in Debian's headless Chromium against a real ``segmap serve`` process.

An owner switches a model's automation on on View Model, uploads a CT session on the
Sessions tab, uploads an RTSTRUCT on the session page, watches the job finish on the Jobs
tab (the table updates itself, no reload), opens the masks, sees the preview, and
downloads the mask, which is then judged voxel for voxel against the independent truth
of ``test_convert_truth``.

The service runs with the runner's test hook ``SEGMAP_JOB_STAGE_DELAY_S`` so the job is
still running when the Jobs tab opens, which makes "the table updates itself" testable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs_helpers import (
    Service,
    assert_mask_matches_truth,
    create_user,
    free_port,
    small_case,
    truth_rois,
)
from segmap import testing as syn

PASSWORD = "journey-password-1"
PROJECT = "JOURNEY"
MODEL = "abdomen"


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[Service]:
    data = tmp_path / "data"
    create_user(data, "olivia", PASSWORD)
    running = Service(data, free_port(), {"SEGMAP_JOB_STAGE_DELAY_S": "1.0"})
    try:
        yield running
    finally:
        running.stop()


def _api(service: Service) -> httpx.Client:
    token = httpx.post(
        f"{service.url}/api/v1/auth/token", json={"username": "olivia", "password": PASSWORD}
    ).json()["token"]
    return httpx.Client(
        base_url=f"{service.url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.browser
def test_upload_session_and_rtstruct_watch_the_job_and_download_the_mask(
    page: Any, service: Service, tmp_path: Path
) -> None:
    url = service.url
    api = _api(service)
    assert api.post("/projects", json={"id": PROJECT, "name": "Journey"}).status_code == 201
    r = api.post(
        f"/projects/{PROJECT}/models", json={"label": MODEL, "voxel_spacing": [2.0, 2.0, 4.0]}
    )
    assert r.status_code == 201 and r.json()["automation"] is False
    text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items())
    r = api.put(
        f"/projects/{PROJECT}/models/{MODEL}/resources/maps/files/region2MaskValueMap.txt",
        content=text.encode(),
    )
    assert r.status_code == 201, r.text
    case = small_case(tmp_path / "case", 51, size=(64, 56, 12), patient="JOURNEY1")

    # Log in; switch automation on from View Model.
    page.goto(f"{url}/login")
    page.fill("#username", "olivia")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/projects")
    page.goto(f"{url}/projects/{PROJECT}/machine-learning/models/{MODEL}")
    switch = page.locator("[data-testid=automation-switch]")
    page.wait_for_function("el => !el.disabled", arg=switch.element_handle())
    assert not switch.is_checked()
    switch.check()
    page.wait_for_function(
        "() => document.querySelector('[data-role=automation-note]')"
        ".textContent.includes('Automation on')"
    )
    assert api.get(f"/projects/{PROJECT}/models/{MODEL}").json()["automation"] is True

    # Upload the session on the Sessions tab.
    page.goto(f"{url}/projects/{PROJECT}")
    page.click("nav.tabs >> text=Sessions")
    page.set_input_files("[data-testid=session-files]", [str(p) for p in case.series.files])
    page.locator("[data-testid=session-upload-result]").wait_for(state="visible")
    page.reload()
    page.click("[data-testid=sessions-table] a")
    page.wait_for_url(f"{url}/projects/{PROJECT}/sessions/*")

    # Upload the RTSTRUCT on the session page.
    page.click("[data-testid=upload-collection-button]")
    page.fill("[data-testid=collection-label]", "Annotator 1")
    page.select_option("[data-testid=collection-type]", "RTSTRUCT")
    page.set_input_files("[data-testid=collection-file]", str(case.rtstruct_path))
    with page.expect_navigation():
        page.click("[data-testid=collection-submit]")
    page.locator("section.collection[data-collection='Annotator 1']").wait_for()

    # Watch the job on the Jobs tab: it is still running, and finishes without a reload.
    page.click("nav.tabs >> text=Jobs")
    page.wait_for_url(f"{url}/projects/{PROJECT}/jobs")
    page.evaluate("() => { window.__notReloaded = true; }")
    row = page.locator("[data-testid=jobs-table] tbody tr").first
    first_state = row.locator("[data-role=state]").inner_text()
    assert first_state in ("queued", "running"), first_state
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-testid=jobs-table] tbody tr "
        "[data-role=state]'); return b && b.textContent === 'succeeded'; }",
        timeout=120_000,
    )
    assert page.evaluate("() => window.__notReloaded === true")
    assert "abdomen" in row.inner_text() and "Annotator 1" in row.inner_text()

    # Open the masks: the preview is shown and the mask downloads.
    page.click("[data-testid=job-outputs]")
    section = page.locator(f"section.derived[data-folder='{MODEL}']")
    image = section.locator("[data-testid=preview-image]")
    image.wait_for(state="visible")
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=image.element_handle())
    with page.expect_download() as info:
        section.locator("a.fname", has_text="mask.nii.gz").first.click()
    download = info.value
    # Named after session, scan and model (issue 9), so downloads do not overwrite each other.
    assert re.fullmatch(rf".+_scan\d+_{MODEL}_mask\.nii\.gz", download.suggested_filename)
    saved = tmp_path / "downloaded" / "mask.nii.gz"
    saved.parent.mkdir()
    download.save_as(saved)
    assert_mask_matches_truth(saved, case.series.folder, truth_rois(case))
