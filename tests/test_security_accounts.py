"""Log-ins that can be taken back (issue 9, point 2), through the real app and CLI.

A browser log-in is a row on the server: logging out, changing the password, and
``segmap users disable|delete`` (run as a separate process against the same database
while the service runs) end it at once, whatever copy of the cookie anyone kept. API
tokens end with them. Both database backends.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from segmap.server.settings import Settings
from server_fixtures import PASSWORD, Api

COOKIE = "segmap_session"


def csrf_of(client: TestClient, url: str = "/login") -> str:
    """The CSRF token in the form of the page at ``url``."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text)
    assert found is not None, url
    return found.group(1)


def form_login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    """Submit the log-in form as a person does (the answer, not followed)."""
    data = {"username": username, "password": password, "csrf_token": csrf_of(client)}
    return client.post("/login", data=data, follow_redirects=False)


def me(client: TestClient, headers: dict[str, str] | None = None) -> int:
    """The status of ``GET /api/v1/me`` (200 logged in, 401 not)."""
    return int(client.get("/api/v1/me", headers=headers or {}).status_code)


def segmap_users(
    settings: Settings, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``segmap users ARGS`` in its own process on the test's data folder and database."""
    extra = ["--database-url", settings.database_url] if settings.database_url else []
    return subprocess.run(
        [sys.executable, "-m", "segmap.cli", "users", *args, "--data", str(settings.data_dir)]
        + extra,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def browsers(api: Api) -> Iterator[Any]:
    """Make extra cookie-keeping clients on the same app (closed afterwards)."""
    made: list[TestClient] = []

    def new() -> TestClient:
        client = TestClient(api.app)
        made.append(client.__enter__())
        return client

    yield new
    for client in made:
        client.__exit__(None, None, None)


def test_logout_ends_the_log_in_even_for_a_copied_cookie(api: Api, browsers: Any) -> None:
    api.make_user("alice")
    browser = browsers()
    assert form_login(browser, "alice").status_code == 303
    assert me(browser) == 200
    stolen = browser.cookies[COOKIE]

    r = browser.post("/logout", data={"csrf_token": csrf_of(browser, "/projects")})
    assert r.status_code in (200, 303)
    assert me(browser) == 401

    thief = browsers()
    thief.cookies.set(COOKIE, stolen)
    assert me(thief) == 401, "the cookie kept from before log-out still logs in"
    assert thief.get("/projects", follow_redirects=False).status_code in (302, 303)


def test_each_log_in_is_its_own_session(api: Api, browsers: Any) -> None:
    """Logging out in one browser leaves the user's other browsers logged in."""
    api.make_user("alice")
    laptop, phone = browsers(), browsers()
    form_login(laptop, "alice")
    form_login(phone, "alice")
    assert laptop.cookies[COOKIE] != phone.cookies[COOKIE]
    laptop.post("/logout", data={"csrf_token": csrf_of(laptop, "/projects")})
    assert (me(laptop), me(phone)) == (401, 200)


def test_password_change_ends_other_log_ins_and_every_token(api: Api, browsers: Any) -> None:
    token = api.make_user("alice")
    here, elsewhere = browsers(), browsers()
    form_login(here, "alice")
    form_login(elsewhere, "alice")
    csrf = csrf_of(here, "/projects")
    assert me(api.client, api.auth(token)) == 200

    body = {"current_password": "wrong", "new_password": "new secret"}
    r = here.post("/api/v1/me/password", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and "current password" in r.json()["detail"]
    assert me(elsewhere) == 200 and me(api.client, api.auth(token)) == 200

    body = {"current_password": PASSWORD, "new_password": "new secret"}
    r = here.post("/api/v1/me/password", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204, r.text
    assert me(here) == 200, "the session that changed the password stays logged in"
    assert me(elsewhere) == 401
    assert me(api.client, api.auth(token)) == 401
    assert form_login(browsers(), "alice").status_code == 401
    assert form_login(browsers(), "alice", "new secret").status_code == 303


def test_password_change_with_a_token_revokes_that_token_too(api: Api) -> None:
    token = api.make_user("alice")
    body = {"current_password": PASSWORD, "new_password": "another"}
    r = api.client.post("/api/v1/me/password", json=body, headers=api.auth(token))
    assert r.status_code == 204, r.text
    assert me(api.client, api.auth(token)) == 401
    r = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": "another"})
    assert r.status_code == 200 and me(api.client, api.auth(r.json()["token"])) == 200


def test_cli_set_password_ends_live_log_ins_and_tokens(
    api: Api, browsers: Any, settings: Settings
) -> None:
    token = api.make_user("alice")
    browser = browsers()
    form_login(browser, "alice")
    done = segmap_users(settings, "set-password", "alice", stdin="fresh one\n")
    assert done.returncode == 0, done.stderr
    assert "1 log-in ended, 1 API token revoked" in done.stdout
    assert me(browser) == 401
    assert me(api.client, api.auth(token)) == 401


def test_cli_disable_stops_a_running_service_at_once_and_enable_undoes_it(
    api: Api, browsers: Any, settings: Settings
) -> None:
    token = api.make_user("alice")
    browser = browsers()
    form_login(browser, "alice")

    done = segmap_users(settings, "disable", "alice")
    assert done.returncode == 0, done.stderr
    assert "disabled 'alice'" in done.stdout
    assert me(browser) == 401
    assert me(api.client, api.auth(token)) == 401
    assert form_login(browsers(), "alice").status_code == 401
    r = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 401
    # The answer to a disabled account is the one to a wrong password: nothing told.
    assert r.json()["detail"] == "wrong username or password"
    listed = segmap_users(settings, "list")
    assert "alice\tuser\tdisabled" in listed.stdout.splitlines()

    done = segmap_users(settings, "enable", "alice")
    assert done.returncode == 0, done.stderr
    assert form_login(browsers(), "alice").status_code == 303
    assert me(api.client, api.auth(token)) == 401, "tokens revoked by disabling stay revoked"


def test_cli_state_commands_name_an_unknown_user(settings: Settings, app: Any) -> None:
    for command in ("disable", "enable", "delete"):
        done = segmap_users(settings, command, "ghost")
        assert done.returncode == 1
        assert done.stderr.strip() == f"segmap users {command}: there is no user 'ghost'"


def test_cli_delete_refuses_a_sole_owner_then_deletes_and_keeps_the_project(
    api: Api, browsers: Any, settings: Settings
) -> None:
    alice = api.make_user("alice")
    bob = api.make_user("bob")
    admin = api.make_user("root", admin=True)
    c = api.client
    assert c.post("/api/v1/projects", json={"id": "P", "name": "P"}, headers=api.auth(alice))
    browser = browsers()
    form_login(browser, "alice")

    done = segmap_users(settings, "delete", "alice")
    assert done.returncode == 1
    assert "'alice' is the only owner of project 'P'" in done.stderr
    assert "disable the account instead" in done.stderr
    assert me(browser) == 200, "a refused delete changes nothing"

    r = c.post(
        "/api/v1/projects/P/members",
        json={"username": "bob", "role": "owner"},
        headers=api.auth(alice),
    )
    assert r.status_code == 201, r.text
    done = segmap_users(settings, "delete", "alice")
    assert done.returncode == 0, done.stderr
    assert me(browser) == 401 and me(c, api.auth(alice)) == 401
    r = c.get("/api/v1/projects/P/members", headers=api.auth(bob))
    assert r.json() == [{"username": "bob", "role": "owner"}]
    r = c.get("/api/v1/projects/P", headers=api.auth(admin))
    assert r.status_code == 200 and r.json()["created_by"] is None
    assert "alice" not in segmap_users(settings, "list").stdout
    # The name is free again.
    done = segmap_users(settings, "create", "alice", stdin="pw\n")
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ the admin page


def test_users_page_is_for_site_admins_only(api: Api, browsers: Any) -> None:
    api.make_user("alice")
    browser = browsers()
    form_login(browser, "alice")
    r = browser.get("/admin/users")
    assert r.status_code == 403
    assert "Only site admins can see the list of accounts" in r.text
    assert 'data-testid="admin-users-link"' not in browser.get("/projects").text
    r = browser.post("/admin/users/disable", data={"username": "alice"})
    assert r.status_code == 403
    anonymous = browsers()
    assert anonymous.get("/admin/users", follow_redirects=False).status_code in (302, 303)


def test_admin_page_disables_enables_and_deletes(api: Api, browsers: Any) -> None:
    api.make_user("root", admin=True)
    token = api.make_user("alice")
    api.make_user("bob")
    admin, alice = browsers(), browsers()
    form_login(admin, "root")
    form_login(alice, "alice")
    page = admin.get("/projects").text
    assert 'data-testid="admin-users-link"' in page
    listing = admin.get("/admin/users").text
    for name in ("root", "alice", "bob"):
        assert f'data-account="{name}"' in listing

    # The forms need the page's CSRF token.
    r = admin.post(
        "/admin/users/disable",
        data={"username": "alice", "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and me(alice) == 200

    csrf = csrf_of(admin, "/admin/users")
    r = admin.post(
        "/admin/users/disable",
        data={"username": "alice", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert me(alice) == 401 and me(api.client, api.auth(token)) == 401
    page = admin.get("/admin/users").text
    assert "alice is disabled" in page
    row = page.split('data-account="alice"')[1].split("</tr>")[0]
    assert ">disabled<" in row and "enable-user" in row
    assert form_login(browsers(), "alice").status_code == 401

    admin.post(
        "/admin/users/enable",
        data={"username": "alice", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert form_login(browsers(), "alice").status_code == 303

    admin.post(
        "/admin/users/delete", data={"username": "bob", "csrf_token": csrf}, follow_redirects=False
    )
    page = admin.get("/admin/users").text
    assert 'data-account="bob"' not in page and "bob is deleted" in page


def test_admin_cannot_disable_or_delete_their_own_account(api: Api, browsers: Any) -> None:
    api.make_user("root", admin=True)
    admin = browsers()
    form_login(admin, "root")
    csrf = csrf_of(admin, "/admin/users")
    for action in ("disable", "delete"):
        r = admin.post(
            f"/admin/users/{action}",
            data={"username": "ROOT", "csrf_token": csrf},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert f"You cannot {action} your own account" in admin.get("/admin/users").text
        assert me(admin) == 200


def test_admin_page_explains_a_refused_delete(api: Api, browsers: Any) -> None:
    api.make_user("root", admin=True)
    alice = api.make_user("alice")
    api.client.post("/api/v1/projects", json={"id": "Q", "name": "Q"}, headers=api.auth(alice))
    admin = browsers()
    form_login(admin, "root")
    csrf = csrf_of(admin, "/admin/users")
    admin.post(
        "/admin/users/delete",
        data={"username": "alice", "csrf_token": csrf},
        follow_redirects=False,
    )
    page = admin.get("/admin/users").text
    assert "is the only owner of project" in page and 'data-account="alice"' in page
