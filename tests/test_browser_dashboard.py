"""The XNAT Machine Learning path in a real headless Chromium against the real server.

Log in → project → Machine Learning tab → dashboard → View Model → Manage Files → Add
Folder → Upload ``region2MaskValueMap.txt`` → listed, shown as a table, downloaded byte for
byte; invalid maps, several files, drag and drop, delete; what a collaborator may do.
Expected tables and line numbers are counted by hand from the files written here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from segmap.labelmap.palette import colour_for_value

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

pytestmark = pytest.mark.browser

PROJECT_ID = "LIVER01"  # the project browser_fixtures makes (owner olivia)

MAP_NAME = "region2MaskValueMap.txt"
# A BOM, a comment and CRLF endings, so a byte-for-byte download proves nothing was
# normalised on the way. Regions on lines 2, 3, 4 (line 1 is the comment).
MAP_BYTES = b"\xef\xbb\xbf# abdomen\r\nLiver=10\r\nLeft Kidney = 31\r\nSpleen=20\r\n"
MAP_TABLE = [("2", "Liver", "10"), ("3", "Left Kidney", "31"), ("4", "Spleen", "20")]


def model_path(label: str) -> str:
    return f"/projects/{PROJECT_ID}/machine-learning/models/{label}"


def table_rows(page: Any) -> list[tuple[str, str, str]]:
    """(line, label, value) of each row of the region map table on the model page."""
    rows = page.locator("[data-testid=region-map-table] tbody tr")
    out = []
    for i in range(rows.count()):
        cells = [rows.nth(i).locator("td").nth(c).inner_text() for c in range(3)]
        out.append((cells[0], cells[1], cells[2]))
    return out


def open_manage_files(page: Any) -> Any:
    page.click("[data-testid=manage-files]")
    dialog = page.locator("[data-testid=manage-files-dialog]")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-loaded", "true")
    return dialog


def close_dialog_and_reload(page: Any, dialog: Any) -> None:
    # Closing the dialog after a change reloads the page so the map table is current.
    with page.expect_navigation():
        dialog.locator(".dialog-foot [data-close-dialog]").click()


def test_xnat_path_upload_region_map_then_table_and_exact_download(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    page.goto(server.url + "/")
    expect(page).to_have_url(f"{server.url}/login")
    page.fill("#username", "olivia")
    page.fill("#password", server.password("olivia"))
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{server.url}/projects")
    expect(page.locator("[data-testid=current-user]")).to_contain_text("olivia")

    page.click(f"text={server.project_name}")
    expect(page.locator("h1")).to_have_text(server.project_name)
    expect(page.locator("[data-testid=project-role]")).to_have_text("owner")
    page.click(".tabs >> text=Machine Learning")
    expect(page.locator(".tabs a.active")).to_have_text("Machine Learning")
    page.click("[data-testid=open-dashboard]")
    expect(page.locator("h1")).to_have_text("Machine Learning dashboard")

    # Install Model, as an owner, from the dashboard's form.
    page.fill("#label", "LiverSeg")
    page.fill("#description", "Liver and kidneys, portal venous CT")
    page.fill("#spacing_x", "0.8")
    page.fill("#spacing_y", "0.8")
    page.fill("#spacing_z", "2.5")
    page.click("[data-testid=install-model-form] button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Installed the model LiverSeg")

    # Back on the dashboard, the model is listed under Installed Models: View Model.
    page.click("nav.breadcrumbs >> text=Machine Learning dashboard")
    row = page.locator("[data-testid=installed-models] tr[data-model=LiverSeg]")
    expect(row).to_contain_text("0.8 × 0.8 × 2.5 mm")
    expect(row).to_contain_text("olivia")
    row.locator("text=View Model").click()
    expect(page.locator("h1")).to_have_text("LiverSeg")
    expect(page.locator("[data-testid=region-map]")).to_contain_text("no region map yet")

    dialog = open_manage_files(page)
    expect(dialog.locator("[data-testid=folder-tree]")).to_contain_text("No folders yet")
    dialog.locator("[data-testid=new-folder-name]").fill("config")
    dialog.locator("[data-testid=add-folder]").click()
    expect(dialog.locator("li[data-folder=config]")).to_be_visible()
    expect(dialog.locator("[data-testid=upload-folder]")).to_have_value("config")

    map_file = tmp_path / MAP_NAME
    map_file.write_bytes(MAP_BYTES)
    dialog.locator("[data-testid=upload-input]").set_input_files(str(map_file))
    listed = dialog.locator(f"li[data-folder=config] li[data-file='{MAP_NAME}']")
    expect(listed).to_be_visible()
    expect(listed).to_contain_text(f"{len(MAP_BYTES)} B")
    expect(dialog.locator("[data-testid=upload-status]")).to_have_text(
        "Uploaded 1 of 1 file into config."
    )
    expect(dialog.locator("[data-role=bar]")).to_have_attribute("style", "width: 100%;")

    # Download from the dialog: the exact bytes that were uploaded.
    with page.expect_download() as info:
        listed.locator("a.btn", has_text="Download").click()
    assert Path(info.value.path()).read_bytes() == MAP_BYTES
    assert info.value.suggested_filename == MAP_NAME

    close_dialog_and_reload(page, dialog)
    assert table_rows(page) == MAP_TABLE
    expect(page.locator("[data-testid=region-map]")).to_contain_text("config/" + MAP_NAME)
    expect(page.locator("[data-testid=region-map]")).to_contain_text("mask type uint8")

    with page.expect_download() as info:
        page.click("[data-testid=download-map]")
    assert Path(info.value.path()).read_bytes() == MAP_BYTES

    # The API agrees with what the page shows.
    answer = server.api("GET", f"/projects/{PROJECT_ID}/models/LiverSeg/region-map")
    assert answer.json()["regions"] == [
        {"label": "Liver", "value": 10},
        {"label": "Left Kidney", "value": 31},
        {"label": "Spleen", "value": 20},
    ]


def test_invalid_map_shows_every_problem_with_its_line_and_is_not_stored(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    server.create_model("BadMap")
    server.log_in(page, "olivia")
    page.goto(server.url + model_path("BadMap"))
    dialog = open_manage_files(page)
    dialog.locator("[data-testid=new-folder-name]").fill("maps")
    dialog.locator("[data-testid=add-folder]").click()
    expect(dialog.locator("li[data-folder=maps]")).to_be_visible()

    # Line 2: the background value; line 4: "liver" repeats line 1; line 5: a word.
    bad = tmp_path / MAP_NAME
    bad.write_bytes(b"Liver=10\nSpleen=0\n\nliver=40\nKidney=abc\n")
    dialog.locator("[data-testid=upload-input]").set_input_files(str(bad))
    problems = dialog.locator("[data-role=problems]")
    expect(problems).to_be_visible()
    expect(problems.locator("h3")).to_contain_text("was not stored")
    lines = [t.strip() for t in problems.locator("li").all_inner_texts()]
    numbered = [t for t in lines if t.startswith("line ")]
    assert [t.split(":")[0] for t in numbered] == ["line 2", "line 4", "line 5"], lines
    assert "0" in numbered[0] and "background" in numbered[0]
    assert "liver" in numbered[1].lower() and "line 1" in numbered[1]
    assert "abc" in numbered[2]
    expect(dialog.locator("li[data-folder=maps]")).to_contain_text("empty folder")
    assert server.folders("BadMap") == {"maps": {}}


def test_several_files_at_once_drag_and_drop_and_delete_with_confirmation(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    server = live_server
    server.create_model("Files")
    server.log_in(page, "olivia")
    page.goto(server.url + model_path("Files"))
    dialog = open_manage_files(page)
    dialog.locator("[data-testid=new-folder-name]").fill("weights")
    dialog.locator("[data-testid=add-folder]").click()
    expect(dialog.locator("li[data-folder=weights]")).to_be_visible()

    blobs = {
        "model.pt": os.urandom(300_000),
        "notes.md": "Trained on 40 cases — ½ contrast\n".encode(),
        "empty.bin": b"",
    }
    paths = []
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    dialog.locator("[data-testid=upload-input]").set_input_files(paths)
    expect(dialog.locator("[data-testid=upload-status]")).to_have_text(
        "Uploaded 3 of 3 files into weights."
    )
    stored = server.folders("Files")["weights"]
    assert {name: f["size"] for name, f in stored.items()} == {
        name: len(data) for name, data in blobs.items()
    }
    with page.expect_download() as info:
        dialog.locator("li[data-file='model.pt'] a.btn").click()
    assert Path(info.value.path()).read_bytes() == blobs["model.pt"]

    # Drag and drop: a file dropped on the drop zone is uploaded like a chosen one.
    drop = page.evaluate_handle(
        """() => { const dt = new DataTransfer();
                   dt.items.add(new File(["dropped\\n"], "dropped.txt", {type: "text/plain"}));
                   return dt; }"""
    )
    dialog.locator("[data-role=dropzone]").dispatch_event("drop", {"dataTransfer": drop})
    expect(dialog.locator("li[data-file='dropped.txt']")).to_be_visible()
    assert server.folders("Files")["weights"]["dropped.txt"]["size"] == len(b"dropped\n")

    # Delete asks first; Cancel keeps the file, OK removes it.
    notes = dialog.locator("li[data-file='notes.md']")
    notes.locator("[data-action=delete]").click()
    confirm = page.locator("[data-testid=confirm-dialog]")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("notes.md")
    confirm.locator("[data-testid=confirm-cancel]").click()
    expect(confirm).to_be_hidden()
    assert "notes.md" in server.folders("Files")["weights"]
    notes.locator("[data-action=delete]").click()
    confirm.locator("[data-testid=confirm-ok]").click()
    expect(dialog.locator("li[data-file='notes.md']")).to_have_count(0)
    assert set(server.folders("Files")["weights"]) == {"model.pt", "empty.bin", "dropped.txt"}

    # A whole folder goes the same way, files and all.
    dialog.locator("li[data-folder=weights] [data-action=delete-folder]").click()
    expect(confirm).to_contain_text("Delete the folder weights and its 3 files?")
    confirm.locator("[data-testid=confirm-ok]").click()
    expect(dialog.locator("li[data-folder=weights]")).to_have_count(0)
    assert server.folders("Files") == {}


@pytest.mark.parametrize("username", ["colin", "mia"])
def test_collaborator_and_member_download_but_cannot_change(
    page: Any, live_server: LiveServer, username: str
) -> None:
    server = live_server
    label = f"Shared-{username}"
    server.create_model(label)
    assert server.upload(label, "config", MAP_NAME, MAP_BYTES).status_code == 201
    server.log_in(page, username)
    page.goto(server.url + model_path(label))
    assert table_rows(page) == MAP_TABLE

    actions = page.locator("[data-testid=actions-box]")
    expect(actions.locator("[data-testid=manage-files]")).to_be_visible()
    expect(actions.locator("[data-testid=edit-region-map]")).to_have_count(0)
    expect(actions.locator("[data-testid=delete-model]")).to_have_count(0)

    dialog = open_manage_files(page)
    expect(dialog.locator(f"li[data-file='{MAP_NAME}']")).to_be_visible()
    expect(dialog.locator("[data-testid=add-folder]")).to_have_count(0)
    expect(dialog.locator("[data-testid=upload-input]")).to_have_count(0)
    expect(dialog.locator("[data-testid=upload-files]")).to_have_count(0)
    expect(dialog.locator("[data-action=delete]")).to_have_count(0)
    with page.expect_download() as info:
        dialog.locator(f"li[data-file='{MAP_NAME}'] a.btn").click()
    assert Path(info.value.path()).read_bytes() == MAP_BYTES

    # The server refuses anyway: the same calls the owner's page makes, from this session.
    api = f"/api/v1/projects/{PROJECT_ID}/models/{label}/resources/config/files/{MAP_NAME}"
    status = page.evaluate(
        """async (url) => {
             const token = document.querySelector('meta[name="csrf-token"]').content;
             const put = await fetch(url, {method: "PUT", body: "Liver=1\\n",
                                           headers: {"X-CSRF-Token": token}});
             const del = await fetch(url, {method: "DELETE", headers: {"X-CSRF-Token": token}});
             return [put.status, del.status];
           }""",
        api,
    )
    assert status == [403, 403]
    page.goto(server.url + model_path(label) + "/region-map")
    expect(page.locator("[data-testid=error-page]")).to_contain_text("403")
    expect(page.locator("[data-testid=error-page]")).to_contain_text("Only project owners")
    assert server.folders(label)["config"][MAP_NAME]["size"] == len(MAP_BYTES)


def test_region_map_editor_validates_live_and_saves_the_canonical_file(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.create_model("Edited")
    server.log_in(page, "olivia")
    page.goto(server.url + model_path("Edited"))
    page.click("[data-testid=edit-region-map]")
    expect(page.locator("h1")).to_have_text("Edit Region Map")
    save = page.locator("[data-testid=save-map]")
    status = page.locator("[data-testid=editor-status]")
    labels = page.locator("[data-testid=region-label]")
    values = page.locator("[data-testid=region-value]")

    # One empty row to start: not yet valid.
    expect(labels).to_have_count(1)
    expect(save).to_be_disabled()
    labels.nth(0).fill("Liver")
    values.nth(0).fill("10")
    expect(status).to_have_text("1 region · valid · mask type uint8")
    expect(save).to_be_enabled()

    page.click("[data-testid=add-region]")
    labels.nth(1).fill("  LIVER ")
    values.nth(1).fill("0")
    row2 = page.locator("tr[data-role=row]").nth(1)
    expect(row2.locator("[data-role=label-msg]")).to_contain_text("repeats the label of row 1")
    expect(row2.locator("[data-role=value-msg]")).to_contain_text("background")
    expect(status).to_have_text("2 problems to fix before saving.")
    expect(save).to_be_disabled()
    labels.nth(1).fill("Spleen")
    values.nth(1).fill("2.5")
    expect(row2.locator("[data-role=value-msg]")).to_contain_text("not a whole number")
    values.nth(1).fill("70000")
    expect(row2.locator("[data-role=value-msg]")).to_contain_text("65535")
    values.nth(1).fill("20")
    expect(row2.locator("[data-role=label-msg]")).to_have_text("")
    expect(save).to_be_enabled()

    # The swatch follows segmap.labelmap's palette, the colour exports give value 20.
    r, g, b, _a = colour_for_value(20)
    swatch = row2.locator("[data-role=swatch]")
    expect(swatch).to_have_css("background-color", f"rgb({r}, {g}, {b})")

    page.click("[data-testid=add-region]")
    labels.nth(2).fill("Left  Kidney")
    values.nth(2).fill("300")
    expect(status).to_have_text("3 regions · valid · mask type uint16")
    page.click("[data-testid=add-region]")
    labels.nth(3).fill("Tumour")
    values.nth(3).fill("20")
    expect(page.locator("[data-testid=editor-notes]")).to_contain_text(
        "Spleen, Tumour share the value 20"
    )
    # Remove the last row, move Left Kidney above Spleen.
    page.locator("[data-testid=remove-region]").nth(3).click()
    expect(labels).to_have_count(3)
    page.locator("tr[data-role=row]").nth(2).locator("[data-role=up]").click()
    assert [labels.nth(i).input_value() for i in range(3)] == ["Liver", "Left  Kidney", "Spleen"]

    page.fill("[data-testid=save-folder]", "maps")
    save.click()
    expect(page.locator("h1")).to_have_text("Edited")
    expect(page.locator(".flash")).to_contain_text(f"maps/{MAP_NAME}")
    assert table_rows(page) == [
        ("1", "Liver", "10"),
        ("2", "Left  Kidney", "300"),
        ("3", "Spleen", "20"),
    ]
    expect(page.locator("[data-testid=region-map]")).to_contain_text("mask type uint16")

    # The stored file is the canonical text: one Label=Value line per row, LF, no comments.
    with page.expect_download() as info:
        page.click("[data-testid=download-map]")
    assert Path(info.value.path()).read_bytes() == b"Liver=10\nLeft  Kidney=300\nSpleen=20\n"

    # Editing again starts from the stored map, in the folder it lives in.
    page.click("[data-testid=edit-region-map]")
    assert [labels.nth(i).input_value() for i in range(3)] == ["Liver", "Left  Kidney", "Spleen"]
    expect(page.locator("[data-testid=save-folder]")).to_have_value("maps")


def test_editor_save_is_checked_by_the_server_not_only_the_browser(
    page: Any, live_server: LiveServer
) -> None:
    server = live_server
    server.create_model("ServerChecks")
    server.log_in(page, "olivia")
    page.goto(server.url + model_path("ServerChecks") + "/region-map")
    token = page.locator("input[name=csrf_token]").first.input_value()
    # Posted straight from the browser session, skipping the page's own checks.
    answer = page.request.post(
        server.url + model_path("ServerChecks") + "/region-map",
        data=(
            f"csrf_token={token}&folder=maps&label=Liver&value=10&label=LIVER&value=%2B5"
            "&label=%23Note&value=3"
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 422
    page.set_content(answer.text())
    problems = page.locator("[data-testid=server-problems] li").all_inner_texts()
    assert [p.split(":")[0] for p in problems] == ["Row 2", "Row 2", "Row 3"], problems
    assert any("plus sign" in p for p in problems)
    assert any("already used" in p for p in problems)
    assert any("#" in p for p in problems if p.startswith("Row 3"))
    assert server.folders("ServerChecks") == {}
