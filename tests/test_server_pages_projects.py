"""New Project, Add Member and Remove in the pages (TestClient, both database backends).

The pages call the same services as the REST API, so these tests check what the pages add:
the forms are shown to the right people, each post needs its CSRF token, the service's
reason is shown, and what the form did is visible through the API afterwards.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server_fixtures import PASSWORD, World

Browser = Callable[[str], TestClient]


@pytest.fixture()
def browser(world: World) -> Iterator[Browser]:
    """Log in through the log-in form as any user of the world (one client per user)."""
    clients: list[Any] = []

    def log_in(username: str) -> TestClient:
        client = TestClient(world.api.app)
        clients.append(client.__enter__())
        r = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": _token(client)},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return client

    yield log_in
    for client in clients:
        client.__exit__(None, None, None)


def _token(client: TestClient, url: str = "/login") -> str:
    """The CSRF token of the form on the page at ``url``."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).text)
    assert found is not None, url
    return found.group(1)


def _post(client: TestClient, url: str, token_from: str, **fields: str) -> Any:
    """Submit a form the way the page does: its fields plus the page's CSRF token."""
    data = {"csrf_token": _token(client, token_from), **fields}
    return client.post(url, data=data, follow_redirects=False)


def _members(world: World) -> dict[str, str]:
    r = world.client.get(world.project_url + "/members", headers=world.h("admin"))
    assert r.status_code == 200, r.text
    return {m["username"]: m["role"] for m in r.json()}


def _text(page: str) -> str:
    """The page's visible text, tags removed and whitespace collapsed."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


# ---------------------------------------------------------------- New Project


def test_new_project_form_creates_the_project_and_opens_it(world: World, browser: Browser) -> None:
    admin = browser("admin")
    page = admin.get("/projects").text
    assert 'data-testid="new-project-form"' in page

    r = _post(admin, "/projects", "/projects", id=" LIVER02 ", name=" Liver follow-up ")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/projects/LIVER02"
    shown = _text(admin.get("/projects/LIVER02").text)
    assert "Created the project Liver follow-up (LIVER02)." in shown

    body = world.client.get("/api/v1/projects/LIVER02", headers=world.h("admin")).json()
    assert (body["id"], body["name"], body["role"]) == ("LIVER02", "Liver follow-up", "owner")
    members = world.client.get("/api/v1/projects/LIVER02/members", headers=world.h("admin"))
    assert members.json() == [{"username": "admin", "role": "owner"}]


@pytest.mark.parametrize(
    ("project_id", "name", "status", "reason"),
    [
        ("", "No id", 422, "is not allowed"),
        ("bad id!", "Spaces", 422, "is not allowed"),
        ("NEW", "", 422, "the project name is empty"),
        ("p", "Clash", 409, "a project with id 'P' already exists"),
    ],
)
def test_new_project_form_shows_the_services_reason_and_keeps_the_input(
    world: World, browser: Browser, project_id: str, name: str, status: int, reason: str
) -> None:
    admin = browser("admin")
    r = _post(admin, "/projects", "/projects", id=project_id, name=name)
    assert r.status_code == status, r.text
    shown = _text(r.text)
    assert reason.casefold() in shown.casefold()
    assert f'value="{html.escape(name)}"' in r.text
    listed = world.client.get("/api/v1/projects", headers=world.h("admin")).json()
    assert [p["id"] for p in listed] == ["P"]


def test_any_logged_in_user_may_create_a_project_as_the_service_allows(
    world: World, browser: Browser
) -> None:
    # services.can_create_projects: every logged-in user, as in XNAT and the REST API.
    outsider = browser("outsider")
    page = outsider.get("/projects").text
    assert 'data-testid="new-project-form"' in page
    assert "No projects yet" in page
    r = _post(outsider, "/projects", "/projects", id="MINE", name="My study")
    assert r.status_code == 303, r.text
    mine = world.client.get("/api/v1/projects", headers=world.h("outsider")).json()
    assert [(p["id"], p["role"]) for p in mine] == [("MINE", "owner")]


# ---------------------------------------------------------------- Members


def test_owner_adds_changes_and_removes_a_member_on_the_overview(
    world: World, browser: Browser
) -> None:
    owner = browser("owner")
    page = owner.get("/projects/P").text
    assert 'data-testid="add-member-form"' in page
    assert page.count('data-testid="remove-member"') == 3  # owner, member, collab

    r = _post(owner, "/projects/P/members", "/projects/P", username="outsider", role="collaborator")
    assert r.status_code == 303 and r.headers["location"] == "/projects/P"
    page = owner.get("/projects/P").text
    assert "Added outsider as collaborator." in _text(page)
    assert 'data-member="outsider"' in page
    assert _members(world)["outsider"] == "collaborator"

    r = _post(owner, "/projects/P/members", "/projects/P", username="outsider", role="member")
    assert r.status_code == 303
    assert "outsider is now member." in _text(owner.get("/projects/P").text)
    assert _members(world)["outsider"] == "member"

    r = _post(owner, "/projects/P/members/remove", "/projects/P", username="outsider")
    assert r.status_code == 303 and r.headers["location"] == "/projects/P"
    page = owner.get("/projects/P").text
    assert "Removed outsider from the project." in _text(page)
    assert 'data-member="outsider"' not in page
    assert "outsider" not in _members(world)


@pytest.mark.parametrize(
    ("username", "role", "status", "reason"),
    [
        ("ghost", "member", 404, "There is no user 'ghost'."),
        ("outsider", "boss", 422, "The role 'boss' is not one of owner, member, collaborator."),
        ("owner", "member", 409, "'owner' is the last owner of project 'P'"),
    ],
)
def test_add_member_shows_the_services_reason(
    world: World, browser: Browser, username: str, role: str, status: int, reason: str
) -> None:
    owner = browser("owner")
    before = _members(world)
    r = _post(owner, "/projects/P/members", "/projects/P", username=username, role=role)
    assert r.status_code == status, r.text
    assert reason in _text(r.text)
    assert f'value="{username}"' in r.text
    assert _members(world) == before


def test_the_last_owner_cannot_be_removed_from_the_page(world: World, browser: Browser) -> None:
    admin = browser("admin")
    r = _post(admin, "/projects/P/members/remove", "/projects/P", username="owner")
    assert r.status_code == 303 and r.headers["location"] == "/projects/P"
    shown = _text(admin.get("/projects/P").text)
    assert "'owner' is the last owner of project 'P'; make someone else owner first." in shown
    assert _members(world)["owner"] == "owner"

    r = _post(admin, "/projects/P/members/remove", "/projects/P", username="outsider")
    assert r.status_code == 303
    assert "'outsider' is not a member of project 'P'" in _text(admin.get("/projects/P").text)


def test_an_owner_who_removes_themselves_goes_back_to_the_project_list(
    world: World, browser: Browser
) -> None:
    owner = browser("owner")
    _post(owner, "/projects/P/members", "/projects/P", username="member", role="owner")
    r = _post(owner, "/projects/P/members/remove", "/projects/P", username="owner")
    assert r.status_code == 303 and r.headers["location"] == "/projects"
    assert "Removed owner from the project." in _text(owner.get("/projects").text)
    assert owner.get("/projects/P").status_code == 403
    assert _members(world) == {"member": "owner", "collab": "collaborator"}


def test_admin_outside_the_project_manages_members(world: World, browser: Browser) -> None:
    admin = browser("admin")
    page = admin.get("/projects/P").text
    assert 'data-testid="add-member-form"' in page
    r = _post(admin, "/projects/P/members", "/projects/P", username="outsider", role="owner")
    assert r.status_code == 303
    assert _members(world)["outsider"] == "owner"


@pytest.mark.parametrize("who", ["member", "collab"])
def test_members_and_collaborators_see_no_member_forms_and_are_refused(
    world: World, browser: Browser, who: str
) -> None:
    client = browser(who)
    page = client.get("/projects/P").text
    assert 'data-member="owner"' in page  # the list itself is for everyone in the project
    assert 'data-testid="add-member-form"' not in page
    assert 'data-testid="remove-member"' not in page
    before = _members(world)
    for url, fields in [
        ("/projects/P/members", {"username": "outsider", "role": "owner"}),
        ("/projects/P/members/remove", {"username": "collab" if who == "member" else "member"}),
    ]:
        r = _post(client, url, "/projects/P", **fields)
        assert r.status_code == 403, (url, r.text)
        assert "Only project owners and site admins can" in _text(r.text)
    assert _members(world) == before


def test_the_forms_refuse_posts_without_their_csrf_token(world: World, browser: Browser) -> None:
    admin = browser("admin")
    admin.get("/projects")  # the session has a token; a cross-site form cannot know it
    before = _members(world)
    for url, fields in [
        ("/projects", {"id": "SNEAKY", "name": "Sneaky"}),
        ("/projects/P/members", {"username": "outsider", "role": "owner"}),
        ("/projects/P/members/remove", {"username": "member"}),
    ]:
        for token in ({}, {"csrf_token": "not-the-token"}):
            r = admin.post(url, data={**fields, **token}, follow_redirects=False)
            assert r.status_code == 403, (url, r.text)
            assert "security token is missing or out of date" in r.text
    assert _members(world) == before
    listed = world.client.get("/api/v1/projects", headers=world.h("admin")).json()
    assert [p["id"] for p in listed] == ["P"]


def test_logged_out_posts_go_to_the_log_in_page(world: World) -> None:
    with TestClient(world.api.app) as anonymous:
        for url in ("/projects", "/projects/P/members", "/projects/P/members/remove"):
            r = anonymous.post(url, data={"username": "x"}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login", url
