"""Browser sessions: cookie flags, CSRF on forms and on cookie-authenticated API calls.

A small route added here logs a user in with ``auth.login`` exactly as the log-in page
does, so these tests do not depend on the pages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import Form, Request
from fastapi.testclient import TestClient

from segmap.server.accounts.service import authenticate, create_user, find_user
from segmap.server.app import create_app
from segmap.server.settings import Settings
from segmap.server.web import auth

PASSWORD = "correct horse battery staple"  # server_fixtures.PASSWORD
COOKIE = "segmap_session"


def _add_login_routes(app: Any) -> None:
    """The log-in form's server side: CSRF check, password check, session start."""

    @app.get("/api/test/form")
    def form(request: Request) -> dict[str, str]:
        return {"csrf": auth.csrf_token(request)}

    @app.post("/api/test/login")
    def login(
        request: Request,
        username: str = Form(),
        password: str = Form(),
        csrf_token: str = Form(""),
    ) -> dict[str, str]:
        auth.check_csrf(request, csrf_token)
        with request.app.state.database.session(write=True) as db:
            principal = authenticate(db, username, password)
        if principal is None:
            from segmap.server.errors import NotAuthenticated

            raise NotAuthenticated("wrong username or password")
        auth.login(request, principal)
        return {"csrf": auth.csrf_token(request)}

    @app.post("/api/test/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> dict[str, str]:
        auth.check_csrf(request, csrf_token)
        auth.logout(request)
        return {}


def _client(settings: Settings, base_url: str = "http://testserver") -> Iterator[TestClient]:
    app = create_app(settings)
    _add_login_routes(app)
    with TestClient(app, base_url=base_url) as client:
        with app.state.database.session(write=True) as db:
            if find_user(db, "alice") is None:
                create_user(db, "alice", PASSWORD)
        yield client
    app.state.database.dispose()


@pytest.fixture()
def browser(settings: Settings) -> Iterator[TestClient]:
    """A cookie-keeping client over http with the test log-in routes."""
    yield from _client(settings)


def _log_in(client: TestClient) -> str:
    """Log alice in through the form; returns the session's CSRF token."""
    csrf = client.get("/api/test/form").json()["csrf"]
    r = client.post(
        "/api/test/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


def _set_cookie(r: Any) -> str:
    [header] = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
    return str(header)


def test_login_sets_httponly_lax_cookie_without_secure_over_http(browser: TestClient) -> None:
    csrf = browser.get("/api/test/form").json()["csrf"]
    r = browser.post(
        "/api/test/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf}
    )
    cookie = _set_cookie(r)
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    assert browser.get("/api/v1/me").json() == {"username": "alice", "is_admin": False}


def test_cookie_is_secure_over_https(settings: Settings) -> None:
    for client in _client(settings, base_url="https://testserver"):
        _log_in(client)
        csrf = client.get("/api/test/form").json()["csrf"]
        r = client.post(
            "/api/test/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf}
        )
        assert "; Secure" in _set_cookie(r)


def test_secure_flag_can_be_forced_either_way(settings: Settings) -> None:
    for client in _client(replace(settings, secure_cookies=True)):
        r = client.get("/api/test/form")
        assert "; Secure" in _set_cookie(r)
    for client in _client(replace(settings, secure_cookies=False), base_url="https://testserver"):
        r = client.get("/api/test/form")
        assert "Secure" not in _set_cookie(r)


def test_login_form_needs_csrf_token(browser: TestClient) -> None:
    browser.get("/api/test/form")
    for token in ("", "forged"):
        r = browser.post(
            "/api/test/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )
        assert r.status_code == 403
        assert "security token" in r.json()["detail"]
    assert browser.get("/api/v1/me").status_code == 401


def test_wrong_password_at_form_is_401(browser: TestClient) -> None:
    csrf = browser.get("/api/test/form").json()["csrf"]
    r = browser.post(
        "/api/test/login", data={"username": "alice", "password": "nope", "csrf_token": csrf}
    )
    assert r.status_code == 401
    assert browser.get("/api/v1/me").status_code == 401


def test_cookie_api_calls_that_change_things_need_csrf_header(browser: TestClient) -> None:
    csrf = _log_in(browser)
    body = {"id": "P", "name": "P"}
    assert browser.get("/api/v1/projects").status_code == 200
    r = browser.post("/api/v1/projects", json=body)
    assert r.status_code == 403
    assert "security token" in r.json()["detail"]
    r = browser.post("/api/v1/projects", json=body, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = browser.post("/api/v1/projects", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    assert [p["id"] for p in browser.get("/api/v1/projects").json()] == ["P"]


def test_bearer_calls_need_no_csrf_even_with_a_cookie(browser: TestClient) -> None:
    _log_in(browser)
    token = browser.post(
        "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}
    ).json()["token"]
    r = browser.post(
        "/api/v1/projects",
        json={"id": "Q", "name": "Q"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201


def test_tampered_cookie_is_ignored(browser: TestClient) -> None:
    _log_in(browser)
    value = browser.cookies[COOKIE]
    browser.cookies.clear()
    browser.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert browser.get("/api/v1/me").status_code == 401


def test_logout_deletes_cookie(browser: TestClient) -> None:
    csrf = _log_in(browser)
    r = browser.post("/api/test/logout", data={"csrf_token": csrf})
    assert r.status_code == 200
    assert "Max-Age=0" in _set_cookie(r)
    assert browser.get("/api/v1/me").status_code == 401


def test_session_expires(settings: Settings) -> None:
    for client in _client(replace(settings, session_max_age_s=1)):
        _log_in(client)
        assert client.get("/api/v1/me").status_code == 200
        time.sleep(2.2)
        assert client.get("/api/v1/me").status_code == 401


def test_disabled_user_loses_session_and_tokens(browser: TestClient) -> None:
    _log_in(browser)
    token = browser.post(
        "/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}
    ).json()["token"]
    database = browser.app.state.database  # type: ignore[attr-defined]
    with database.session(write=True) as db:
        user = find_user(db, "alice")
        assert user is not None
        user.is_active = False
        db.commit()
    assert browser.get("/api/v1/me").status_code == 401
    r = browser.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
