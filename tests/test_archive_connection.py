"""The archive connection: who may set and see it, the password kept secret, and
"Test connection" telling an unreachable URL, refused credentials and a server that is
not DICOMweb apart — through the API, the follower's state and the Archive page.

A real Orthanc with HTTP Basic credentials; SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from archive_helpers import archive_state, connect, fast_app, orthanc_server, wait_for
from segmap.server.archive.secrets import KEY_FILE, SECRET_KEY_ENV, secret_box
from segmap.server.settings import Settings
from segmap.testing.orthanc import Credentials, OrthancServer, free_port
from server_fixtures import World
from test_server_pages_projects import Browser, _text, _token, browser  # noqa: F401

SECRET = "pacs-Secret-2718"
CREDS = Credentials("segmap", SECRET)


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    yield from fast_app(settings)


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    yield from orthanc_server(tmp_path, credentials=CREDS)


def _body(orthanc: OrthancServer, **more: Any) -> dict[str, Any]:
    return {"kind": "orthanc", "url": orthanc.url, "username": "segmap", "password": SECRET, **more}


def _test(world: World, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = world.client.post(f"{world.project_url}/archive/test", json=body, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_owners_and_admins_connect_others_cannot(world: World, orthanc: OrthancServer) -> None:
    url = f"{world.project_url}/archive"
    for who, status in (("member", 403), ("collab", 403), ("outsider", 403), ("anon", 401)):
        r = world.client.put(url, json=_body(orthanc), headers=world.h(who))
        assert r.status_code == status, (who, r.text)
        assert world.client.get(url, headers=world.h(who)).status_code == status
    assert world.client.get(url, headers=world.h("owner")).status_code == 404  # not yet
    r = world.client.put(url, json=_body(orthanc), headers=world.h("owner"))
    assert r.status_code == 201, r.text
    r = world.client.put(url, json=_body(orthanc, push_masks=True), headers=world.h("admin"))
    assert r.status_code == 200 and r.json()["push_masks"] is True
    # Another project's archive is not reachable from here.
    r = world.client.get("/api/v1/projects/OTHER/archive", headers=world.h("owner"))
    assert r.status_code == 404
    assert world.client.delete(url, headers=world.h("member")).status_code == 403
    assert world.client.delete(url, headers=world.h("owner")).status_code == 204
    assert world.client.get(url, headers=world.h("owner")).status_code == 404


def test_password_is_never_shown_nor_stored_in_clear(
    world: World, orthanc: OrthancServer, caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    caplog.set_level(logging.DEBUG)
    out = connect(world, _body(orthanc))
    assert out["has_password"] is True and "password" not in out
    assert (
        SECRET
        not in world.client.get(f"{world.project_url}/archive", headers=world.h("owner")).text
    )
    with world.api.app.state.database.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_encrypted FROM archive_connections")).scalar()
    assert stored and SECRET not in stored
    assert secret_box(settings.data_dir).decrypt(stored) == SECRET
    key = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # A null password keeps the stored one; the follower works with it.
    connect(world, {**_body(orthanc), "password": None, "push_masks": True})
    wait_for("contact", lambda: archive_state(world)["last_contact_at"])
    assert _test(world)["ok"] is True
    assert SECRET not in caplog.text


def test_the_key_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_KEY_ENV, "one shared key for every service")
    token = secret_box(tmp_path / "a").encrypt("pw")
    assert secret_box(tmp_path / "b").decrypt(token) == "pw"  # another data folder, same key
    assert not (tmp_path / "a" / KEY_FILE).exists()
    monkeypatch.setenv(SECRET_KEY_ENV, "another key")
    with pytest.raises(Exception, match="cannot be decrypted"):
        secret_box(tmp_path / "b").decrypt(token)


def test_test_connection_tells_the_three_problems_apart(
    world: World, orthanc: OrthancServer
) -> None:
    good = _test(world, _body(orthanc))
    assert good["ok"] is True and "Orthanc" in good["message"], good
    wrong = _test(world, _body(orthanc, password="not-it"))
    assert (wrong["ok"], wrong["problem"]) == (False, "credentials")
    assert "refused the credentials" in wrong["message"] and "not-it" not in wrong["message"]
    nothing = f"http://127.0.0.1:{free_port()}"
    down = _test(world, _body(orthanc, url=nothing))
    assert (down["problem"], down["ok"]) == ("unreachable", False)
    assert "cannot reach the archive" in down["message"] and nothing in down["message"]
    # Orthanc's REST root given as a DICOMweb root: it answers, but not QIDO.
    rest = _test(world, _body(orthanc, kind="dicomweb"))
    assert rest["problem"] == "not_dicomweb" and "not a DICOMweb root" in rest["message"]
    ok = _test(world, _body(orthanc, kind="dicomweb", url=orthanc.dicomweb_url))
    assert ok["ok"] is True, ok


def test_the_follower_shows_refused_credentials_and_recovers(
    world: World, orthanc: OrthancServer
) -> None:
    connect(world, _body(orthanc, password="wrong"))
    state = wait_for("the error", lambda: (s := archive_state(world))["last_error"] and s)
    assert "refused the credentials" in state["last_error"]
    assert state["last_contact_at"] is None
    connect(world, _body(orthanc))
    state = wait_for("contact", lambda: (s := archive_state(world))["last_contact_at"] and s)
    assert state["last_error"] is None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"kind": "pacs"}, "kind"),
        ({"url": "ftp://pacs"}, "http:// or https://"),
        ({"url": "http://user:pw@pacs:8042"}, "own fields"),
        ({"filter": {"Colour": "red"}}, "Colour"),
        ({"filter": {"Modality": []}}, "non-empty"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_settings_are_refused_with_the_field(
    world: World, change: dict[str, Any], needle: str
) -> None:
    body = {"kind": "orthanc", "url": "http://127.0.0.1:1", **change}
    r = world.client.put(f"{world.project_url}/archive", json=body, headers=world.h("owner"))
    assert r.status_code == 422 and needle in r.text, r.text


def _post(client: Any, url: str, token_from: str, fields: dict[str, str] | None = None) -> Any:
    """Submit a form as the page does: its fields and the page's CSRF token."""
    data = {"csrf_token": _token(client, token_from), **(fields or {})}
    return client.post(url, data=data, follow_redirects=False)


def test_the_archive_page_connects_and_tests(
    world: World,
    orthanc: OrthancServer,
    browser: Browser,  # noqa: F811
) -> None:
    page = "/projects/P/archive"
    member = browser("member")
    assert member.get(page).status_code == 403
    assert browser("outsider").get(page).status_code == 403
    owner = browser("owner")
    assert "Archive settings" in owner.get("/projects/P").text
    fields = {"kind": "orthanc", "url": orthanc.url, "username": "segmap", "password": "nope"}
    r = _post(owner, f"{page}/test", page, fields)
    assert r.status_code == 200 and "Credentials refused" in _text(r.text), _text(r.text)
    assert "nope" not in r.text
    r = _post(owner, f"{page}/test", page, {**fields, "url": f"http://127.0.0.1:{free_port()}"})
    assert "Unreachable" in _text(r.text)
    r = _post(owner, f"{page}/save", page, {**fields, "password": SECRET, "push_masks": "on"})
    assert r.status_code == 303, r.text
    assert archive_state(world)["push_masks"] is True

    def contact_shown() -> str | None:
        shown = _text(owner.get(page).text)
        contact = shown.split("Last contact")[1].split("Last error")[0]
        return shown if "UTC" in contact and "Last error none" in shown else None

    shown = wait_for("contact on the page", contact_shown)
    assert SECRET not in shown and "stored; blank keeps it" in shown
    r = _post(owner, f"{page}/test", page, {**fields, "password": ""})
    assert "Connected" in _text(r.text)
    r = _post(owner, f"{page}/save", page, {**fields, "filter": "{nope"})
    assert r.status_code == 422 and "filter is not JSON" in _text(r.text)
    r = _post(owner, f"{page}/disconnect", page)
    assert r.status_code == 303
    assert (
        world.client.get(f"{world.project_url}/archive", headers=world.h("owner")).status_code
        == 404
    )
