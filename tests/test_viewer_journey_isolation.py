"""In the browser, a user who cannot see project A gets no data source for it and no
data from it (``test_viewer_config`` checks the generated JSON; this checks the viewer).

Against a real ``segmap serve`` and the real OHIF dist: olivia owns ANNOT (a study of
patient SECRETPAT), nadia owns OTHER (a study of patient NADIAPAT) and is not in ANNOT.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobs_helpers import Service, create_user, free_port, small_case
from test_viewer_journey import ohif_browser, tab  # noqa: F401

pytestmark = pytest.mark.browser

USERS = {"olivia": "olivia-pass-11", "nadia": "nadia-pass-12"}


def _client(url: str, user: str) -> httpx.Client:
    token = httpx.post(
        f"{url}/api/v1/auth/token", json={"username": user, "password": USERS[user]}
    ).json()["token"]
    return httpx.Client(
        base_url=f"{url}/api/v1", timeout=60, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """The service, and the StudyInstanceUID of ANNOT's study."""
    root = tmp_path_factory.mktemp("viewer-isolation")
    for user, password in USERS.items():
        create_user(root / "data", user, password)
    service = Service(root / "data", free_port(), {})
    try:
        studies = {}
        for user, project, patient in (
            ("olivia", "ANNOT", "SECRETPAT"),
            ("nadia", "OTHER", "NADIAPAT"),
        ):
            with _client(service.url, user) as api:
                assert (
                    api.post("/projects", json={"id": project, "name": project}).status_code == 201
                )
                case = small_case(root / project, len(patient), size=(32, 32, 4), patient=patient)
                files = [
                    ("files", (p.name, p.read_bytes(), "application/dicom"))
                    for p in case.series.files
                ]
                r = api.post(f"/projects/{project}/sessions", files=files)
                assert r.status_code == 201, r.text
                studies[project] = r.json()["sessions"][0]["study_instance_uid"]
        yield service, studies["ANNOT"]
    finally:
        service.stop()


def _nadia_logs_in(page: Any, url: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", "nadia")
    page.fill("#password", USERS["nadia"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/projects")


def test_an_outsider_gets_no_data_source_and_no_data_in_the_viewer(
    two_projects: tuple[Service, str],
    tab: Any,  # noqa: F811
) -> None:
    service, secret_study = two_projects
    url = service.url
    _nadia_logs_in(tab, url)
    answers: list[tuple[int, str]] = []
    tab.on(
        "response",
        lambda r: (
            answers.append((r.status, r.url)) if "/dicomweb/projects/ANNOT" in r.url else None
        ),
    )

    # The study list: her project's study, nothing of ANNOT.
    tab.goto(f"{url}/ohif/")
    tab.get_by_text("NADIAPAT").first.wait_for(timeout=60_000)
    # The data sources OHIF registered from the config: hers only.
    sources = tab.evaluate("() => Object.keys(window.extensionManager.dataSourceMap)")
    assert sources == ["OTHER"]
    assert [s["sourceName"] for s in tab.evaluate("() => window.config.dataSources")] == ["OTHER"]
    assert "SECRETPAT" not in tab.locator("body").inner_text()

    # ANNOT's study asked for through her own source: the viewer gets nothing.
    found = tab.evaluate(
        "uid => window.extensionManager.getActiveDataSource()[0].query.studies"
        ".search({studyInstanceUid: uid})",
        secret_study,
    )
    assert found == []

    # ANNOT's DICOMweb root, fetched from the page with her session cookie: 404s, no data.
    for path in (
        "/dicomweb/projects/ANNOT/studies",
        f"/dicomweb/projects/ANNOT/studies/{secret_study}/series",
        f"/dicomweb/projects/ANNOT/studies/{secret_study}/metadata",
    ):
        status, body = tab.evaluate(
            "async p => { const r = await fetch(p, {headers: {Accept: 'application/dicom+json'}});"
            " return [r.status, await r.text()]; }",
            path,
        )
        assert status == 404, (path, status)
        assert secret_study not in body and "SECRETPAT" not in body
    assert answers and all(status == 404 for status, _ in answers), answers
