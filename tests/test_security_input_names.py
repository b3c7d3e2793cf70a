"""Names that mean one thing (issue 9, point 5), and the caps on text fields (point 3),
through the real app on SQLite and PostgreSQL and the real ``segmap users`` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from imaging_data import multipart, write_phantom_rtstruct, write_study
from server_fixtures import World

# Invisible or text-direction characters: zero-width space, zero-width joiner, the
# right-to-left override, a bidi isolate, the line and paragraph separators, soft hyphen.
HIDDEN = ["\u200b", "\u200d", "\u202e", "\u2066", "\u2028", "\u2029", "\u00ad", "\ufeff"]


# ---------------------------------------------------------------- trailing newlines


@pytest.mark.parametrize("project_id", ["NL1\n", "NL1\r\n", "NL1 ", "\nNL1"])
def test_project_ids_with_a_line_break_are_refused(world: World, project_id: str) -> None:
    r = world.client.post(
        "/api/v1/projects", json={"id": project_id, "name": "x"}, headers=world.h("owner")
    )
    assert r.status_code == 422, r.text
    assert "project id" in r.json()["detail"]
    listed = world.client.get("/api/v1/projects", headers=world.h("admin")).json()
    assert [p["id"] for p in listed] == ["P"]


def test_usernames_with_a_trailing_newline_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    data = tmp_path / "data"
    made = subprocess.run(
        [sys.executable, "-m", "segmap.cli", "users", "create", "NL1\n", "--data", str(data)],
        input="a password\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert made.returncode == 1, made.stderr
    assert "the username 'NL1\\n' is not allowed" in made.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "segmap.cli", "users", "list", "--data", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "NL1" not in listed.stdout


# ---------------------------------------------------------------- hidden characters


@pytest.mark.parametrize("ch", HIDDEN)
def test_hidden_characters_are_refused_in_folder_and_file_names(world: World, ch: str) -> None:
    folder = world.client.put(
        f"{world.model_url}/resources/{quote('ma' + ch + 'ps', safe='')}", headers=world.h("owner")
    )
    assert folder.status_code == 422, folder.text
    assert f"U+{ord(ch):04X}" in folder.json()["detail"]
    upload = world.client.put(
        world.file_url("maps", quote("notes" + ch + ".txt", safe="")),
        content=b"x",
        headers=world.h("owner"),
    )
    assert upload.status_code == 422, upload.text
    listed = world.client.get(f"{world.model_url}/resources", headers=world.h("owner")).json()
    assert listed == []


@pytest.mark.parametrize("ch", HIDDEN)
def test_hidden_characters_are_refused_in_model_labels_and_project_names(
    world: World, ch: str
) -> None:
    model = world.client.post(
        f"{world.project_url}/models",
        json={"label": "liver" + ch + "ct2", "voxel_spacing": [1, 1, 1]},
        headers=world.h("owner"),
    )
    assert model.status_code == 422, model.text
    assert f"U+{ord(ch):04X}" in model.json()["detail"]
    project = world.client.post(
        "/api/v1/projects",
        json={"id": "Q", "name": "Liver" + ch + " study"},
        headers=world.h("owner"),
    )
    assert project.status_code == 422, project.text
    assert f"U+{ord(ch):04X}" in project.json()["detail"]


def test_hidden_characters_are_refused_in_collection_labels(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path / "dicom", seed=3, patient_id="HID")
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]["id"]
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    for ch in ("\u202e", "\u200b", "\u2028"):
        label = quote("annot" + ch + "1", safe="")
        r = world.client.put(
            f"/api/v1/projects/P/sessions/{session}/collections/{label}",
            content=rt.read_bytes(),
            params={"type": "RTSTRUCT"},
            headers=world.h("owner"),
        )
        assert r.status_code == 422, r.text
    listed = world.client.get(
        f"/api/v1/projects/P/sessions/{session}/collections", headers=world.h("owner")
    )
    assert listed.json() == []


def test_descriptions_may_have_line_breaks_but_no_hidden_characters(world: World) -> None:
    ok = world.client.post(
        f"{world.project_url}/models",
        json={"label": "two-lines", "description": "Liver.\nCT only.", "voxel_spacing": [1, 1, 1]},
        headers=world.h("owner"),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["description"] == "Liver.\nCT only."
    bad = world.client.post(
        f"{world.project_url}/models",
        json={"label": "bidi", "description": "Liver \u202eTC", "voxel_spacing": [1, 1, 1]},
        headers=world.h("owner"),
    )
    assert bad.status_code == 422, bad.text


# ---------------------------------------------------------------- invalid UTF-8 in URLs


def test_invalid_utf8_escapes_are_refused_not_collapsed(world: World) -> None:
    # Both used to be decoded to U+FFFD: the second PUT answered 200 "already there".
    for escape in ("%FF", "%FE", "a%C3", "%C0%AF"):
        r = world.client.put(f"{world.model_url}/resources/{escape}", headers=world.h("owner"))
        assert r.status_code == 422, (escape, r.text)
        assert "UTF-8" in r.json()["detail"]
        upload = world.client.put(
            world.file_url("maps", escape), content=b"x", headers=world.h("owner")
        )
        assert upload.status_code == 422, (escape, upload.text)
    listed = world.client.get(f"{world.model_url}/resources", headers=world.h("owner")).json()
    assert listed == []
    # Proper UTF-8 escapes are names like any other.
    r = world.client.put(f"{world.model_url}/resources/%C3%A9tudes", headers=world.h("owner"))
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "études"


def test_invalid_utf8_in_the_query_is_refused(world: World) -> None:
    r = world.client.get(f"{world.project_url}/jobs?model=%FF", headers=world.h("owner"))
    assert r.status_code == 422, r.text


# ---------------------------------------------------------------- case


def test_project_lookup_ignores_case_like_uniqueness(world: World) -> None:
    owner = world.h("owner")
    made = world.client.post("/api/v1/projects", json={"id": "LIVER01", "name": "L"}, headers=owner)
    assert made.status_code == 201
    clash = world.client.post(
        "/api/v1/projects", json={"id": "liver01", "name": "l"}, headers=owner
    )
    assert clash.status_code == 409
    for spelling in ("LIVER01", "liver01", "Liver01"):
        r = world.client.get(f"/api/v1/projects/{spelling}", headers=owner)
        assert r.status_code == 200, (spelling, r.text)
        assert r.json()["id"] == "LIVER01"
    r = world.client.post(
        "/api/v1/projects/liver01/models",
        json={"label": "m", "voxel_spacing": [1, 1, 1]},
        headers=owner,
    )
    assert r.status_code == 201, r.text
    assert r.json()["project"] == "LIVER01"


# ---------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/projects", {"id": "X" * 65, "name": "x"}),
        ("/api/v1/projects", {"id": "X", "name": "n" * 201}),
        ("/api/v1/projects/P/models", {"label": "l" * 129, "voxel_spacing": [1, 1, 1]}),
        (
            "/api/v1/projects/P/models",
            {"label": "long-description", "description": "d" * 4001, "voxel_spacing": [1, 1, 1]},
        ),
        ("/api/v1/projects/P/models", {"label": "many", "voxel_spacing": [1.0] * 10000}),
        ("/api/v1/projects/P/members", {"username": "u" * 65, "role": "member"}),
        ("/api/v1/projects/P/members", {"username": "member", "role": "r" * 1000}),
    ],
)
def test_over_long_text_fields_are_refused(world: World, url: str, body: dict[str, object]) -> None:
    r = world.client.post(url, json=body, headers=world.h("owner"))
    assert r.status_code == 422, r.text


def test_over_long_folder_and_file_names_are_refused(world: World) -> None:
    r = world.client.put(f"{world.model_url}/resources/{'f' * 256}", headers=world.h("owner"))
    assert r.status_code == 422, r.text
    assert "255 bytes" in r.json()["detail"]
    r = world.client.put(world.file_url("maps", "é" * 128), content=b"x", headers=world.h("owner"))
    assert r.status_code == 422, r.text  # 128 characters, 256 bytes
