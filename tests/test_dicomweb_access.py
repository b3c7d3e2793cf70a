"""Who may reach a project's DICOMweb root: principals, roles, isolation, CORS.

Through segmap's real server (uvicorn on loopback, dicomweb-client and requests), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pydicom
import pytest
import requests
from fastapi.testclient import TestClient
from requests import HTTPError
from sqlalchemy import update

from dicomweb_helpers import Stored, basic_client, client_for, store_study
from imaging_data import multipart, write_study
from segmap.server.accounts.service import set_password
from segmap.server.app import create_app
from segmap.server.db.accounts import ApiToken, User
from segmap.server.db.base import utcnow
from segmap.server.db.registry import ROLES, Project
from segmap.server.dicomweb.auth import may_read
from segmap.server.registry.access import ProjectAccess
from segmap.server.settings import Settings
from segmap.server.web.auth import Principal
from server_fixtures import PASSWORD, Api, ThreadedServer, World


@pytest.fixture()
def stored(world: World, tmp_path: Path) -> Stored:
    return store_study(world, tmp_path / "a")


def _instance_urls(root: str, path: Path) -> list[str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    inst = f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    inst += f"/instances/{ds.SOPInstanceUID}"
    return [
        f"{root}/studies/{ds.StudyInstanceUID}",
        f"{root}/studies/{ds.StudyInstanceUID}/metadata",
        inst,
        f"{inst}/metadata",
        f"{inst}/frames/1",
        f"{inst}/rendered",
        f"{inst}/bulk/7FE00010",
    ]


def test_anonymous_and_wrong_credentials_get_401_with_a_challenge(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    root = f"{threaded_server.url}/dicomweb/projects/P"
    for url in [f"{root}/studies", *_instance_urls(root, stored.study.files[0])]:
        r = requests.get(url, timeout=30)
        assert r.status_code == 401, url
        assert (
            "Basic" in r.headers["www-authenticate"] and "Bearer" in r.headers["www-authenticate"]
        )
        assert "detail" in r.json()
    bad = [
        {"Authorization": "Bearer smp_not-a-token"},
        {"Authorization": "Basic bm90LWJhc2U2NA=="},  # "not-base64" has no colon
    ]
    for headers in bad:
        r = requests.get(f"{root}/studies", headers=headers, timeout=30)
        assert r.status_code == 401, headers
    with pytest.raises(HTTPError) as refused:
        basic_client(threaded_server.url, "member", "wrong password").search_for_studies()
    assert refused.value.response.status_code == 401
    assert "username or password" in refused.value.response.json()["detail"]


def test_every_role_may_search_and_retrieve_with_any_principal(
    world: World, threaded_server: ThreadedServer, stored: Stored
) -> None:
    path = stored.study.files[0]
    for who in ("owner", "member", "collab", "admin"):
        client = client_for(threaded_server.url, world.h(who))
        assert len(client.search_for_studies()) == 1, who
        assert client.retrieve_instance(*_uids(path)).SOPInstanceUID == _uids(path)[2]
    basic = basic_client(threaded_server.url, "collab", PASSWORD)
    assert [pydicom.Dataset.from_json(s).StudyInstanceUID for s in basic.search_for_studies()] == [
        stored.study_uid
    ]
    assert len(basic.retrieve_series_metadata(*_uids(path)[:2])) == 4  # cached: no new argon2
    with world.api.app.state.database.session(write=True) as db:
        set_password(db, "collab", "a new password")
    with pytest.raises(HTTPError) as refused:
        basic.search_for_studies()  # the old password stops working at once
    assert refused.value.response.status_code == 401
    assert (
        len(basic_client(threaded_server.url, "collab", "a new password").search_for_studies()) == 1
    )

    with TestClient(world.api.app) as browser:  # the session cookie, as OHIF on /ohif/ has it
        form = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = browser.post(
            "/login",
            data={"username": "member", "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert r.status_code == 303
        r = browser.get("/dicomweb/projects/P/studies")
        assert r.status_code == 200 and len(r.json()) == 1


def _uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def test_projects_are_isolated_by_query_and_by_uid(
    world: World, threaded_server: ThreadedServer, stored: Stored, tmp_path: Path
) -> None:
    api: Api = world.api
    bob = Api.auth(api.make_user("bob"))
    r = world.client.post("/api/v1/projects", json={"id": "B", "name": "B"}, headers=bob)
    assert r.status_code == 201, r.text
    theirs = write_study(tmp_path / "b", seed=9, patient_id="BOB", series_numbers=(2,))
    r = world.client.post("/api/v1/projects/B/sessions", files=multipart(theirs.files), headers=bob)
    assert r.status_code == 201, r.text

    in_b = client_for(threaded_server.url, bob, project="B")
    assert [pydicom.Dataset.from_json(s).PatientID for s in in_b.search_for_studies()] == ["BOB"]
    assert in_b.search_for_studies(search_filters={"StudyInstanceUID": stored.study_uid}) == []
    assert in_b.search_for_series(search_filters={"PatientID": "DW1"}) == []
    assert in_b.search_for_instances(search_filters={"SOPInstanceUID": _uids(stored.seg)[2]}) == []
    a_root_in_b = f"{threaded_server.url}/dicomweb/projects/B"
    for url in _instance_urls(a_root_in_b, stored.study.files[0]):  # A's UIDs under B's root
        r = requests.get(url, headers=bob, timeout=30)
        assert r.status_code == 404, url
        assert stored.study_uid in r.json()["detail"]
    r = requests.get(f"{a_root_in_b}/studies/{stored.study_uid}/series", headers=bob, timeout=30)
    assert r.status_code == 200 and r.json() == []  # QIDO: nothing matches
    a_root = f"{threaded_server.url}/dicomweb/projects/P"
    unknown = requests.get(
        f"{threaded_server.url}/dicomweb/projects/NOPE/studies", headers=bob, timeout=30
    )
    for url in [f"{a_root}/studies", *_instance_urls(a_root, stored.study.files[0])]:
        r = requests.get(url, headers=bob, timeout=30)  # A's root: as if it did not exist
        assert r.status_code == 404, url
        assert r.json()["detail"] == "there is no project 'P'"
    assert unknown.status_code == 404 and unknown.json()["detail"] == "there is no project 'NOPE'"
    outsider = requests.get(f"{a_root}/studies", headers=world.h("outsider"), timeout=30)
    assert outsider.status_code == 404


def test_cors_is_off_by_default_and_follows_the_setting(
    world: World, stored: Stored, settings: Settings
) -> None:
    preflight = {
        "Origin": "https://viewer.example.org",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    r = world.client.options("/dicomweb/projects/P/studies", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = world.client.get(
        "/dicomweb/projects/P/studies",
        headers={**world.h("member"), "Origin": "https://viewer.example.org"},
    )
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers

    world.api.app.state.database.dispose()
    app = create_app(replace(settings, cors_origins=("https://viewer.example.org",)))
    try:
        with TestClient(app) as client:
            r = client.options("/dicomweb/projects/P/studies", headers=preflight)
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == "https://viewer.example.org"
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
            other = client.options(
                "/dicomweb/projects/P/studies",
                headers={**preflight, "Origin": "https://evil.example"},
            )
            assert other.status_code == 400
            assert "access-control-allow-origin" not in other.headers
            r = client.get(
                "/dicomweb/projects/P/studies",
                headers={**world.h("member"), "Origin": "https://viewer.example.org"},
            )
            assert r.status_code == 200 and len(r.json()) == 1
            assert r.headers["access-control-allow-origin"] == "https://viewer.example.org"
            api_call = client.get(
                "/api/v1/projects",
                headers={**world.h("member"), "Origin": "https://viewer.example.org"},
            )
            assert "access-control-allow-origin" not in api_call.headers  # only DICOMweb
    finally:
        app.state.database.dispose()


def test_each_search_checks_the_caller_again(world: World, stored: Stored) -> None:
    """Nothing of one request's caller check is kept for the next: a revoked token, a
    disabled account, a removed member and an expired token are refused at once."""
    url = "/dicomweb/projects/P/studies"
    client = world.client

    def search(headers: dict[str, str]) -> httpx.Response:
        return client.get(url, params={"StudyInstanceUID": stored.study_uid}, headers=headers)

    member = world.h("member")
    assert search(member).status_code == 200
    assert client.delete("/api/v1/auth/token", headers=member).status_code == 204
    r = search(member)
    assert r.status_code == 401 and "not valid" in r.json()["detail"]

    collab = world.h("collab")  # disabled in the table alone: its token row stays
    assert search(collab).status_code == 200
    with world.api.app.state.database.session(write=True) as db:
        db.execute(update(User).where(User.username == "collab").values(is_active=False))
        db.commit()
    assert search(collab).status_code == 401

    dana = Api.auth(world.api.make_user("dana"))
    owner = world.h("owner")
    r = client.post("/api/v1/projects/P/members", json={"username": "dana", "role": "member"},
                    headers=owner)  # fmt: skip
    assert r.status_code == 201, r.text
    assert len(search(dana).json()) == 1
    assert client.delete("/api/v1/projects/P/members/dana", headers=owner).status_code == 204
    r = search(dana)
    assert r.status_code == 404 and r.json()["detail"] == "there is no project 'P'"

    assert search(owner).status_code == 200
    max_age = world.api.app.state.settings.token_max_age_s
    with world.api.app.state.database.session(write=True) as db:
        aged = utcnow() - timedelta(seconds=max_age + 60)
        db.execute(update(ApiToken).values(created_at=aged))
        db.commit()
    r = search(owner)
    assert r.status_code == 401 and "expired" in r.json()["detail"]


@pytest.mark.parametrize("role", [*ROLES, None])
@pytest.mark.parametrize("is_admin", [False, True])
def test_the_dicomweb_read_rule_is_the_registrys(role: str | None, is_admin: bool) -> None:
    """DICOMweb decides who may read from a plain role (no Project row is loaded); it
    must agree with the registry's rule for every role."""
    principal = Principal(id=1, username="u", is_admin=is_admin)
    project = Project(id="P", id_key="p", name="P")
    expected = ProjectAccess(project=project, principal=principal, role=role).can_read
    assert may_read(principal, role) is expected
