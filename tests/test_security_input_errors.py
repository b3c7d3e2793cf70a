"""The HTTP error boundary of a real ``segmap serve`` (issue 9, point 4).

An error no handler knows -- here a stored file that the disk turned into a folder,
as a broken restore or a careless administrator leaves it -- becomes a JSON 500
``{"detail", "request_id"}`` on the API and the error page for browsers, is logged once
with its traceback and the request id, and shows nothing of the exception. Every answer
carries ``X-Request-ID``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jobs_helpers import Service, create_user, free_port

PASSWORD = "a long enough password"
MAP = b"Liver=1\nSpleen=2\n"


@dataclass
class Broken:
    """A service whose model's region map file became a folder on disk."""

    service: Service
    token: str
    model_url: str
    page_url: str

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.service.url, headers={"Authorization": f"Bearer {self.token}"}
        )

    def log(self) -> str:
        self.service.log.flush()
        return self.service.log_path.read_text()


@pytest.fixture()
def broken(tmp_path: Path) -> Iterator[Broken]:
    data = tmp_path / "data"
    create_user(data, "boss", PASSWORD)
    service = Service(data, free_port(), {})
    try:
        r = httpx.post(
            service.url + "/api/v1/auth/token", json={"username": "boss", "password": PASSWORD}
        )
        token = r.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=service.url, headers=auth) as c:
            assert c.post("/api/v1/projects", json={"id": "P", "name": "P"}).status_code == 201
            r = c.post("/api/v1/projects/P/models", json={"label": "m", "voxel_spacing": [1, 1, 1]})
            assert r.status_code == 201, r.text
            model_url = f"/api/v1/projects/P/models/{r.json()['id']}"
            r = c.put(f"{model_url}/resources/maps/files/region2MaskValueMap.txt", content=MAP)
            assert r.status_code == 201, r.text
        (stored,) = [
            p for p in (data / "storage").rglob("*") if p.is_file() and p.read_bytes() == MAP
        ]
        stored.unlink()
        stored.mkdir()  # the row stays, the bytes are now a folder: reading them fails
        page = "/projects/P/machine-learning/models/m"
        yield Broken(service, token, model_url, page)
    finally:
        service.stop()


def test_unexpected_error_is_a_json_500_with_a_request_id_logged_once(broken: Broken) -> None:
    with broken.api() as c:
        first = c.get(f"{broken.model_url}/region-map")
        second = c.get(f"{broken.model_url}/resources/maps/files/region2MaskValueMap.txt")
    ids = []
    for r in (first, second):
        assert r.status_code == 500, r.text
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert set(body) == {"detail", "request_id"}
        assert body["request_id"] == r.headers["X-Request-ID"]
        assert body["request_id"] in body["detail"]
        # Nothing of the exception or the server reaches the caller.
        assert "IsADirectory" not in r.text and "storage" not in r.text and "/" not in r.text
        ids.append(body["request_id"])
    assert ids[0] != ids[1]
    log = broken.log()
    assert log.count("Traceback (most recent call last)") == 2, log
    for request_id in ids:
        (line,) = [x for x in log.splitlines() if request_id in x]
        assert "unexpected error in GET /api/v1/projects/P/models/" in line
    assert "IsADirectoryError" in log  # the administrator sees what went wrong


def test_browsers_get_the_error_page_with_the_request_id(broken: Broken) -> None:
    with httpx.Client(base_url=broken.service.url) as browser:
        form = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = browser.post(
            "/login",
            data={"username": "boss", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert r.status_code in (200, 303)
        page = browser.get(broken.page_url)
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    request_id = page.headers["X-Request-ID"]
    assert request_id in page.text
    assert "Traceback" not in page.text and "IsADirectory" not in page.text
    assert request_id in broken.log()


def test_every_answer_carries_a_request_id(broken: Broken) -> None:
    with broken.api() as c:
        answers = [
            c.get("/api/v1/me"),  # 200
            c.get("/api/v1/projects/NOPE"),  # 404
            httpx.get(broken.service.url + "/api/v1/projects"),  # 401
            c.get("/static/nothing-here.css"),  # the static mount
            c.get("/login"),  # a page
        ]
        kept = c.get("/api/v1/me", headers={"X-Request-ID": "proxy-1234abcd"})
        forged = c.get("/api/v1/me", headers={"X-Request-ID": "short"})
    ids = [r.headers.get("X-Request-ID") for r in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i or "") for i in ids), ids
    assert len(set(ids)) == len(ids)
    # A proxy's own id is kept so both logs agree; one that is not plausibly an id is not.
    assert kept.headers["X-Request-ID"] == "proxy-1234abcd"
    assert forged.headers["X-Request-ID"] != "short"
