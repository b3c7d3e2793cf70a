"""Smaller leaks (issue 9, point 7), through the real app and its job runner.

- a 422 never echoes the refused request body (a password sent with the wrong type);
- the members API does not tell who has an account;
- job logs and errors hold no server path or process id (the service log has them);
- a job of a project the caller cannot see is a 404 like a job that does not exist.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from jobs_helpers import small_case
from segmap import testing as syn
from segmap.server.db.accounts import User
from segmap.server.settings import Settings
from server_fixtures import World

SECRET = "hunter2-do-not-echo"
DONE = ("succeeded", "failed")


# ------------------------------------------------------------------ 422 answers


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": [SECRET]},
        {"username": [SECRET], "password": SECRET},
        {"username": "alice", "password": "x", "pasword": SECRET},
        {"username": "alice", "passwd": SECRET},
    ],
)
def test_validation_errors_do_not_echo_the_body(world: World, body: dict[str, Any]) -> None:
    r = world.client.post("/api/v1/auth/token", json=body)
    assert r.status_code == 422
    assert SECRET not in r.text
    problems = r.json()["detail"]
    assert problems and all(set(p) == {"loc", "msg"} for p in problems), problems
    assert all(p["loc"][0] == "body" for p in problems)


def test_malformed_json_is_not_echoed(world: World) -> None:
    raw = '{"username": "alice", "password": "' + SECRET + '"'  # no closing brace
    r = world.client.post(
        "/api/v1/auth/token", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and SECRET not in r.text
    assert r.json()["detail"][0]["msg"]


# ------------------------------------------------------------------ members


def _add(world: World, who: str, username: str) -> tuple[int, Any]:
    r = world.client.post(
        world.project_url + "/members",
        json={"username": username, "role": "member"},
        headers=world.h(who),
    )
    return r.status_code, r.json()


def test_adding_members_answers_alike_whether_the_account_exists(world: World) -> None:
    """Who may not manage the project is refused before any name is looked at."""
    for who in ("member", "collab", "outsider"):
        assert _add(world, who, "admin") == _add(world, who, "nobody-by-this-name"), who
        assert _add(world, who, "admin")[0] == 403


def test_a_disabled_account_is_answered_like_a_missing_one(world: World) -> None:
    world.api.make_user("dora")
    with world.api.app.state.database.session(write=True) as db:
        db.execute(update(User).where(User.username == "dora").values(is_active=False))
        db.commit()
    status, body = _add(world, "owner", "dora")
    assert status == 404
    assert body["detail"] == _add(world, "owner", "dora2")[1]["detail"].replace("dora2", "dora")
    assert body["detail"] == "there is no user 'dora'"


def test_removing_a_non_member_answers_alike_whether_the_account_exists(world: World) -> None:
    answers = []
    for name in ("outsider", "no-such-user"):
        r = world.client.delete(world.project_url + f"/members/{name}", headers=world.h("owner"))
        answers.append((r.status_code, r.json()["detail"].replace(name, "NAME")))
    assert answers[0] == answers[1] and answers[0][0] == 404
    assert answers[0][1] == "'NAME' is not a member of project 'P'"


# ------------------------------------------------------------------ jobs


def _put_map(world: World) -> None:
    text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items())
    r = world.client.put(
        f"{world.model_url}/resources/maps/files/region2MaskValueMap.txt",
        content=text.encode(),
        headers=world.h("owner"),
    )
    assert r.status_code in (200, 201), r.text


def _upload(world: World, case: syn.SyntheticCase) -> dict[str, Any]:
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = world.client.post("/api/v1/projects/P/sessions", files=files, headers=world.h("owner"))
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{session['id']}/collections/rois",
        content=case.rtstruct_path.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    collection: dict[str, Any] = r.json()
    return collection


def _convert(world: World) -> int:
    r = world.client.post(f"{world.model_url}/convert", json={}, headers=world.h("owner"))
    assert r.status_code == 202, r.text
    return int(r.json()["jobs"][0]["id"])


def _wait(world: World, job_id: int, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = world.client.get(f"/api/v1/jobs/{job_id}", headers=world.h("member"))
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["state"] in DONE:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def _assert_private_bits_absent(text: str, settings: Settings) -> None:
    for private in (str(settings.data_dir), str(settings.data_dir.resolve()), "/tmp/", " pid "):
        assert private not in text, f"{private!r} shown to users:\n{text}"
    assert "Traceback" not in text


def test_job_logs_name_no_paths_and_no_process_ids(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    _put_map(world)
    _upload(world, small_case(tmp_path / "case", 61))
    job = _wait(world, _convert(world))
    assert job["state"] == "succeeded", job
    assert "stored" in job["log"] and "converting job" in job["log"]
    _assert_private_bits_absent(job["log"], settings)
    _assert_private_bits_absent(json.dumps(job), settings)


def test_a_failed_jobs_error_names_no_paths_but_the_service_log_has_them(
    world: World, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _put_map(world)
    collection = _upload(world, small_case(tmp_path / "case", 62))
    # The scan's stored images vanish (a disk problem): the conversion cannot read them.
    scan_dir = world.api.app.state.storage.objects / "scans" / str(collection["scan"]["id"])
    assert scan_dir.is_dir(), scan_dir
    shutil.rmtree(scan_dir)
    with caplog.at_level(logging.WARNING, logger="segmap.server.jobs"):
        job = _wait(world, _convert(world))
    assert job["state"] == "failed", job
    assert job["error"], job
    _assert_private_bits_absent(job["error"], settings)
    _assert_private_bits_absent(job["log"], settings)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"job {job['id']} failed" in logged
    assert str(settings.storage_dir.resolve()) in logged, logged


@pytest.fixture()
def slow_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers pause after each progress report (the runner's test hook), so a job is
    seen running; requested before ``world`` so the app's runner reads it."""
    monkeypatch.setenv("SEGMAP_JOB_STAGE_DELAY_S", "0.3")


def test_a_running_jobs_runner_is_a_label_except_for_site_admins(
    slow_jobs: None, world: World, tmp_path: Path
) -> None:
    _put_map(world)
    _upload(world, small_case(tmp_path / "case", 63))
    job_id = _convert(world)
    seen: dict[str, set[str]] = {"member": set(), "admin": set()}
    deadline = time.monotonic() + 180
    while True:
        states = set()
        for who in seen:
            job = world.client.get(f"/api/v1/jobs/{job_id}", headers=world.h(who)).json()
            states.add(job["state"])
            if job["runner"]:
                seen[who].add(job["runner"])
        if states <= set(DONE):
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert seen["member"] and seen["admin"], "the job was never seen running"
    [label], [token] = seen["member"], seen["admin"]
    assert ":" not in label
    host, pid, suffix = token.split(":")  # what an administrator needs to find the process
    assert pid.isdigit() and suffix == label


def test_a_job_of_a_project_you_cannot_see_is_not_found(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    _put_map(world)
    _upload(world, small_case(tmp_path / "case", 64))
    job_id = _convert(world)
    missing = job_id + 1000
    outsider = world.h("outsider")
    r = world.client.get(f"/api/v1/jobs/{job_id}", headers=outsider)
    r_missing = world.client.get(f"/api/v1/jobs/{missing}", headers=outsider)
    assert (r.status_code, r_missing.status_code) == (404, 404)
    assert r.json()["detail"] == r_missing.json()["detail"].replace(str(missing), str(job_id))
    assert "'P'" not in r.text and "Project P" not in r.text
    # Anonymous callers are told to log in, job or no job.
    anon = [world.client.get(f"/api/v1/jobs/{n}").status_code for n in (job_id, missing)]
    assert anon == [401, 401]
    # Members still see it.
    assert world.client.get(f"/api/v1/jobs/{job_id}", headers=world.h("collab")).status_code == 200
