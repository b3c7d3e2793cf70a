"""Log-in, log-out, CSRF, friendly 401/403/404 pages, Install and Delete Model (Chromium)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

pytestmark = pytest.mark.browser

PROJECT_ID = "LIVER01"
DASHBOARD = f"/projects/{PROJECT_ID}/machine-learning/dashboard"


def test_logged_out_visitor_logs_in_and_returns_to_the_page_asked_for(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    page.goto(server.url + DASHBOARD)
    expect(page).to_have_url(f"{server.url}/login?next={quote(DASHBOARD, safe='')}")

    page.fill("#username", "olivia")
    page.fill("#password", "not-her-password")
    page.click("button[type=submit]")
    expect(page.locator(".flash.error")).to_have_text("Wrong username or password.")
    expect(page.locator("#username")).to_have_value("olivia")

    page.fill("#password", server.password("olivia"))
    page.click("button[type=submit]")
    expect(page).to_have_url(server.url + DASHBOARD)
    expect(page.locator("h1")).to_have_text("Machine Learning dashboard")

    page.click("text=Log out")
    expect(page).to_have_url(f"{server.url}/login")
    expect(page.locator(".flash")).to_have_text("You have logged out.")
    page.goto(server.url + "/projects")
    expect(page).to_have_url(f"{server.url}/login?next=%2Fprojects")


def test_log_in_refuses_a_form_without_its_csrf_token_and_never_redirects_off_site(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    page.goto(server.url + "/login")
    # A cross-site form cannot know the token: the post is refused and nobody is logged in.
    answer = page.request.post(
        server.url + "/login",
        form={"username": "olivia", "password": server.password("olivia"), "next": "/projects"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert "security token" in answer.text()
    page.goto(server.url + "/projects")
    expect(page).to_have_url(f"{server.url}/login?next=%2Fprojects")

    page.goto(f"{server.url}/login?next=//evil.example/steal")
    page.fill("#username", "olivia")
    page.fill("#password", server.password("olivia"))
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/projects")


def test_friendly_pages_for_missing_and_forbidden(page: Any, live_server: LiveServer) -> None:
    server = live_server
    server.log_in(page, "nadia")
    expect(page.locator("[data-testid=project-list]")).to_have_count(0)
    expect(page.locator(".empty")).to_contain_text("No projects yet")

    response = page.goto(f"{server.url}/projects/{PROJECT_ID}")
    assert response is not None and response.status == 403
    error = page.locator("[data-testid=error-page]")
    expect(error.locator("h1")).to_have_text("You do not have access to this")
    expect(error).to_contain_text("not a member of project")
    expect(page.locator("[data-testid=current-user]")).to_contain_text("nadia")

    response = page.goto(f"{server.url}/projects/NOPE/machine-learning/dashboard")
    assert response is not None and response.status == 404
    expect(error.locator("h1")).to_have_text("Not found")
    expect(error).to_contain_text("There is no project 'NOPE'.")

    response = page.goto(f"{server.url}/no/such/page")
    assert response is not None and response.status == 404
    expect(error.locator("h1")).to_have_text("Not found")


def test_member_sees_models_but_no_install_form(page: Any, live_server: LiveServer) -> None:
    server = live_server
    server.create_model("ForMembers")
    server.log_in(page, "mia")
    page.click(f"text={server.project_name}")
    expect(page.locator("[data-testid=project-role]")).to_have_text("member")
    page.click(".tabs >> text=Machine Learning")
    page.click("[data-testid=open-dashboard]")
    expect(page.locator("tr[data-model=ForMembers]")).to_be_visible()
    expect(page.locator("[data-testid=install-model-form]")).to_have_count(0)
    expect(page.locator("[data-testid=install-model-link]")).to_have_count(0)


def test_site_admin_sees_every_project(page: Any, live_server: LiveServer) -> None:
    server = live_server
    server.log_in(page, "admin")
    expect(page.locator("[data-testid=current-user]")).to_contain_text("site admin")
    row = page.locator("[data-testid=project-list] tr", has_text=PROJECT_ID)
    expect(row).to_contain_text("site admin")


def test_install_model_form_shows_the_services_reason(page: Any, live_server: LiveServer) -> None:
    server = live_server
    server.create_model("Existing")
    server.log_in(page, "olivia")
    page.goto(server.url + DASHBOARD)
    page.fill("#label", "12345")
    page.fill("#spacing_x", "1")
    page.fill("#spacing_y", "1")
    page.fill("#spacing_z", "2")
    page.click("[data-testid=install-model-form] button[type=submit]")
    expect(page.locator("#install-model .flash.error")).to_contain_text("only digits")
    expect(page.locator("#label")).to_have_value("12345")  # what was typed is kept
    expect(page.locator("#spacing_z")).to_have_value("2")
    page.fill("#label", "existing")
    page.click("[data-testid=install-model-form] button[type=submit]")
    expect(page.locator("#install-model .flash.error")).to_contain_text(
        "already has a model labelled 'Existing'"
    )


def test_delete_model_asks_first(page: Any, live_server: LiveServer) -> None:
    server = live_server
    server.create_model("Doomed")
    stored = server.upload("Doomed", "config", "region2MaskValueMap.txt", b"Liver=1\n")
    assert stored.status_code == 201
    server.log_in(page, "olivia")
    page.goto(f"{server.url}/projects/{PROJECT_ID}/machine-learning/models/Doomed")
    confirm = page.locator("[data-testid=confirm-dialog]")

    page.click("[data-testid=delete-model]")
    expect(confirm).to_contain_text("Delete the model Doomed and all its files?")
    confirm.locator("[data-testid=confirm-cancel]").click()
    expect(confirm).to_be_hidden()
    assert server.api("GET", f"/projects/{PROJECT_ID}/models/Doomed").status_code == 200

    page.click("[data-testid=delete-model]")
    confirm.locator("[data-testid=confirm-ok]").click()
    expect(page).to_have_url(server.url + DASHBOARD)
    expect(page.locator(".flash")).to_contain_text("Deleted the model Doomed")
    expect(page.locator("tr[data-model=Doomed]")).to_have_count(0)
    assert server.api("GET", f"/projects/{PROJECT_ID}/models/Doomed").status_code == 404


def test_two_different_maps_are_reported_on_the_model_page(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.create_model("TwoMaps")
    assert server.upload("TwoMaps", "a", "region2MaskValueMap.txt", b"Liver=1\n").status_code == 201
    assert server.upload("TwoMaps", "b", "region2MaskValueMap.txt", b"Liver=2\n").status_code == 201
    server.log_in(page, "colin")
    page.goto(f"{server.url}/projects/{PROJECT_ID}/machine-learning/models/TwoMaps")
    problems = page.locator("[data-testid=map-problems]")
    expect(problems).to_contain_text("different region maps in several folders")
    expect(problems).to_contain_text("a/region2MaskValueMap.txt")
    expect(page.locator("[data-testid=region-map-table]")).to_have_count(0)


def test_page_forms_refuse_collaborators_and_posts_without_the_token(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.create_model("Guarded")
    model = f"{server.url}/projects/{PROJECT_ID}/machine-learning/models/Guarded"
    server.log_in(page, "colin")
    page.goto(model)
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    # A collaborator with a valid token still may not change anything.
    for url, form in [
        (f"{model}/delete", {}),
        (f"{model}/region-map", {"folder": "maps", "label": "Liver", "value": "1"}),
        (
            f"{server.url}/projects/{PROJECT_ID}/machine-learning/models",
            {"label": "Sneaky", "spacing_x": "1", "spacing_y": "1", "spacing_z": "1"},
        ),
    ]:
        answer = page.request.post(url, form={"csrf_token": token or "", **form}, max_redirects=0)
        assert answer.status == 403, (url, answer.status)
        assert "Only project owners" in answer.text()
    page.click("text=Log out")

    # The owner without the form's token: refused too (what a cross-site form would send).
    server.log_in(page, "olivia")
    answer = page.request.post(f"{model}/delete", form={}, max_redirects=0)
    assert answer.status == 403
    assert "security token" in answer.text()
    assert server.api("GET", f"/projects/{PROJECT_ID}/models/Guarded").status_code == 200
    assert server.api("GET", f"/projects/{PROJECT_ID}/models/Sneaky").status_code == 404
    assert server.folders("Guarded") == {}
