"""Region maps from careless or hostile hands (issue 9, points 3 and 4), and what a
conversion request means (point 7), through the real app, its pages and the real CLI.

- a 1 MB bad map used to answer 144 MB (every problem, every line quoted in full): now
  the first 50 problems, a count of the rest, each line cut to 80 characters;
- a value of 4,300+ digits used to be a 500 (Python refuses to int() it): now a refusal
  naming the line, in the API, the editor page and ``segmap map check``;
- ``{"collection": ""}`` used to convert every collection: now a 422.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imaging_data import multipart, write_phantom_rtstruct, write_study
from segmap.labelmap.problems import MAX_REPORTED
from server_fixtures import PASSWORD, World

HUGE_VALUE = "7" * 5000  # past Python's 4,300-digit limit for int("...")
MAP_URL = "resources/maps/files/region2MaskValueMap.txt"


def _put_map(world: World, text: str | bytes) -> Any:
    data = text.encode() if isinstance(text, str) else text
    return world.client.put(f"{world.model_url}/{MAP_URL}", content=data, headers=world.h("owner"))


def _bad_megabyte() -> bytes:
    """About 1 MB of lines that are each wrong, some of them very long."""
    lines = []
    for n in range(50000):
        lines.append(f"Organ {n % 7}=0" if n % 3 else f"Structure number {n}: {n}")
    lines.append("Liver=" + "x" * 100_000)  # a value 100 kB long
    lines.append("L" * 100_000 + "=2")  # a label 100 kB long
    data = ("\n".join(lines) + "\n").encode()
    assert 0.9e6 < len(data) <= 1024 * 1024
    return data


# ---------------------------------------------------------------- error answers


def test_a_megabyte_of_bad_map_gets_a_small_answer(world: World) -> None:
    r = _put_map(world, _bad_megabyte())
    assert r.status_code == 422
    assert len(r.content) < 40_000, len(r.content)  # was 144 MB
    body = r.json()
    assert len(body["problems"]) == MAX_REPORTED
    first = re.fullmatch(
        r"maps/region2MaskValueMap.txt: (\d+) problems in the region map \(the first "
        rf"{MAX_REPORTED} are listed\); nothing was stored:",
        body["detail"].splitlines()[0],
    )
    assert first is not None, body["detail"][:300]
    total = int(first.group(1))
    assert total > 50000  # every line is wrong, some twice (a value and a repeated label)
    assert body["problems_not_shown"] == total - MAX_REPORTED
    assert f"and {total - MAX_REPORTED} more problems" in body["detail"]
    assert all(len(p["text"]) <= 83 for p in body["problems"])
    r = world.client.get(f"{world.model_url}/resources", headers=world.h("owner"))
    assert r.json() == []  # nothing was stored


def test_huge_labels_and_values_are_quoted_short(world: World) -> None:
    r = _put_map(world, "Liver=" + "x" * 100_000 + "\n" + "L" * 100_000 + "=2\n")
    assert r.status_code == 422
    assert len(r.content) < 2000, len(r.content)
    value, label = r.json()["problems"]
    assert value["line"] == 1 and "is not a number" in value["message"]
    assert label["line"] == 2 and "100000 characters long" in label["message"]


def test_a_label_longer_than_any_dicom_name_is_refused(world: World) -> None:
    r = _put_map(world, "L" * 300 + "=1\n")
    assert r.status_code == 422
    assert "300 characters long" in r.json()["problems"][0]["message"]


# ---------------------------------------------------------------- huge values


def test_a_value_of_5000_digits_is_refused_naming_the_line_in_the_api(world: World) -> None:
    for text in (HUGE_VALUE, "0" * 4999 + "1" * 5000):
        r = _put_map(world, f"Spleen=20\nLiver={text}\n")
        assert r.status_code == 422, r.text
        (problem,) = r.json()["problems"]
        assert problem["line"] == 2
        assert problem["message"] == (
            "the value (5000 digits) is too large; the largest region value is 65535"
        )
    # Leading zeros alone do not make a value large.
    r = _put_map(world, "Liver=" + "0" * 5000 + "7\n")
    assert r.status_code == 201, r.text


def test_a_value_of_5000_digits_is_refused_in_the_editor(world: World) -> None:
    with TestClient(world.api.app) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
        assert token is not None
        browser.post(
            "/login", data={"username": "owner", "password": PASSWORD, "csrf_token": token.group(1)}
        )
        editor = "/projects/P/machine-learning/models/liver-ct/region-map"
        form = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(editor).text)
        assert form is not None
        r = browser.post(
            editor,
            data={
                "csrf_token": form.group(1),
                "label": ["Spleen", "Liver"],
                "value": ["20", HUGE_VALUE],
                "folder": "maps",
            },
        )
        assert r.status_code == 422, r.text[:500]
        assert "Row 2: the value (5000 digits) is too large" in r.text
        assert HUGE_VALUE not in r.text.replace(f'value="{HUGE_VALUE}"', "")

        many = browser.post(
            editor,
            data={
                "csrf_token": form.group(1),
                "label": [f"Organ {n}" for n in range(400)],
                "value": ["0"] * 400,
                "folder": "maps",
            },
        )
    assert many.status_code == 422
    shown = re.findall(r"Row \d+: 0 is the background value", many.text)
    assert len(shown) == MAX_REPORTED
    assert f"and {400 - MAX_REPORTED} more problems" in many.text


def test_a_value_of_5000_digits_is_refused_by_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "region2MaskValueMap.txt"
    bad.write_text(f"Spleen=20\nLiver={HUGE_VALUE}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    done = subprocess.run(
        [sys.executable, "-m", "segmap.cli", "map", "check", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"{bad}:2: " in done.stdout
    assert "the value (5000 digits) is too large" in done.stdout
    assert len(done.stdout) < 500  # the line is quoted short, not 5000 digits
    assert "bug" not in done.stderr and "Traceback" not in done.stderr


def test_the_cli_lists_the_first_problems_and_counts_the_rest(tmp_path: Path) -> None:
    bad = tmp_path / "map.txt"
    bad.write_text("".join(f"Organ {n}=0\n" for n in range(10000)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    done = subprocess.run(
        [sys.executable, "-m", "segmap.cli", "map", "check", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1].startswith(f"... and {10000 - MAX_REPORTED} more problems")
    assert "10000 problems" in done.stderr


@pytest.mark.parametrize(
    "json_text",
    [
        '{"labels": {"background": 0, "liver": 1}, "numTraining": ' + HUGE_VALUE + "}",
        '{"labels": {"background": 0, "liver": ' + HUGE_VALUE + "}}",
    ],
)
def test_map_import_refuses_huge_numbers(tmp_path: Path, json_text: str) -> None:
    source = tmp_path / "dataset.json"
    source.write_text(json_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "segmap.cli",
            "map",
            "import",
            "--from",
            "nnunet",
            str(source),
            "-o",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bug" not in done.stderr and "Traceback" not in done.stderr
    assert "too large" in done.stderr or "too large" in done.stdout


# ---------------------------------------------------------------- what to convert


@pytest.fixture()
def convertible(world: World, tmp_path: Path) -> World:
    """Project P with one session, one RTSTRUCT and the model's region map."""
    study = write_study(tmp_path / "dicom", seed=5, patient_id="CONV")
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]["id"]
    rt = tmp_path / "rt.dcm"
    names = write_phantom_rtstruct(rt, study.series[0])
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{session}/collections/annot",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    assert _put_map(world, "".join(f"{n}={i}\n" for i, n in enumerate(names, 1))).status_code == 201
    return world


@pytest.mark.parametrize(
    "body",
    [
        {"collection": ""},
        {"collection": "   "},
        {"collection": "²/annot"},  # a session "id" int() cannot read
        {"collection": "9" * 30},
        {"collection": 2**40},
        {"collection": 0},
        {"collection": True},
    ],
)
def test_an_empty_or_impossible_collection_is_refused_not_read_as_all(
    convertible: World, body: dict[str, Any]
) -> None:
    world = convertible
    r = world.client.post(f"{world.model_url}/convert", json=body, headers=world.h("owner"))
    assert r.status_code == 422, r.text
    jobs = world.client.get("/api/v1/projects/P/jobs", headers=world.h("owner")).json()
    assert jobs == []


@pytest.mark.parametrize("body", [{}, {"collection": None}, None])
def test_absent_or_null_collection_converts_every_collection(
    convertible: World, body: dict[str, Any] | None
) -> None:
    world = convertible
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    r = world.client.post(f"{world.model_url}/convert", headers=world.h("owner"), **kwargs)
    assert r.status_code == 202, r.text
    assert [j["collection"] for j in r.json()["jobs"]] == ["annot"]
