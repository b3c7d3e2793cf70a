"""New Project, Add Member and Remove in real headless Chromium (own server: it adds a project)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

pytestmark = pytest.mark.browser

PROJECT_ID = "LIVER01"


def test_admin_creates_a_project_adds_a_member_and_removes_them(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.log_in(page, "admin")
    form = page.locator("[data-testid=new-project-form]")

    # The service's reason comes back into the form, with what was typed kept.
    form.locator("#project-id").fill("liver01")
    form.locator("#project-name").fill("A clash")
    form.locator("button[type=submit]").click()
    expect(page.locator("#new-project .flash.error")).to_have_text(
        "A project with id 'LIVER01' already exists."
    )
    expect(form.locator("#project-name")).to_have_value("A clash")

    form.locator("#project-id").fill("KIDNEY02")
    form.locator("#project-name").fill("Kidney follow-up")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(f"{server.url}/projects/KIDNEY02")
    expect(page.locator(".flash.success")).to_have_text(
        "Created the project Kidney follow-up (KIDNEY02)."
    )
    expect(page.locator("h1")).to_have_text("Kidney follow-up")
    members = page.locator("[data-testid=members]")
    expect(members.locator("tr[data-member=admin]")).to_contain_text("owner")

    add = page.locator("[data-testid=add-member-form]")
    add.locator("#member-username").fill("mia")
    add.locator("#member-role").select_option("collaborator")
    add.locator("button[type=submit]").click()
    expect(page.locator(".flash.success")).to_have_text("Added mia as collaborator.")
    expect(members.locator("tr[data-member=mia]")).to_contain_text("collaborator")

    # Remove asks first; Cancel leaves mia in the project.
    mia_row = members.locator("tr[data-member=mia]")
    mia_row.locator("[data-testid=remove-member]").click()
    dialog = page.locator("[data-testid=confirm-dialog]")
    expect(dialog).to_contain_text("Remove mia from the project KIDNEY02?")
    dialog.locator("[data-testid=confirm-cancel]").click()
    expect(mia_row).to_be_visible()
    mia_row.locator("[data-testid=remove-member]").click()
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(page.locator(".flash.success")).to_have_text("Removed mia from the project.")
    expect(members.locator("tr[data-member=mia]")).to_have_count(0)
    listed = server.api("GET", "/projects/KIDNEY02/members", "admin").json()
    assert listed == [{"username": "admin", "role": "owner"}]

    # The last owner stays: the service refuses, and the page says why.
    members.locator("tr[data-member=admin] [data-testid=remove-member]").click()
    dialog.locator("[data-testid=confirm-ok]").click()
    expect(page.locator(".flash.error")).to_contain_text("'admin' is the last owner")
    expect(members.locator("tr[data-member=admin]")).to_be_visible()


def test_a_plain_member_sees_the_members_but_no_member_forms(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.log_in(page, "mia")
    page.goto(f"{server.url}/projects/{PROJECT_ID}")
    members = page.locator("[data-testid=members]")
    expect(members.locator("tr[data-member=olivia]")).to_contain_text("owner")
    expect(members.locator("tr[data-member=mia]")).to_contain_text("member")
    expect(page.locator("[data-testid=add-member-form]")).to_have_count(0)
    expect(page.locator("[data-testid=remove-member]")).to_have_count(0)
    # New Project follows services.can_create_projects: every logged-in user, as in the API.
    page.goto(f"{server.url}/projects")
    expect(page.locator("[data-testid=new-project-form]")).to_be_visible()
