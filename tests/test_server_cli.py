"""``segmap users`` and ``segmap serve`` as a user runs them: real processes, real stdin."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from segmap.server.accounts.service import authenticate, find_user
from segmap.server.db.engine import Database
from segmap.server.settings import Settings

SEGMAP = [sys.executable, "-c", "import sys; from segmap.cli import main; sys.exit(main())"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    env.update(extra)
    return env


def segmap(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``segmap ARGS`` with ``stdin`` piped in."""
    return subprocess.run(
        [*SEGMAP, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else _env(),
    )


def _check_login(data: Path, name: str, password: str) -> bool | None:
    """None when the user does not exist, else whether they are an admin (password checked)."""
    data.mkdir(parents=True, exist_ok=True)
    db = Database(Settings(data_dir=data).effective_database_url)
    try:
        db.migrate()
        with db.session() as s:
            if find_user(s, name) is None:
                return None
            principal = authenticate(s, name, password)
            assert principal is not None, "the password given on stdin does not log in"
            return principal.is_admin
    finally:
        db.dispose()


def test_users_create_reads_password_from_pipe(tmp_path: Path) -> None:
    done = segmap("users", "create", "alice", "--data", str(tmp_path), stdin=" sp ace d\n")
    assert done.returncode == 0, done.stderr
    assert "alice" in done.stdout
    assert _check_login(tmp_path, "alice", " sp ace d") is False


def test_users_create_admin(tmp_path: Path) -> None:
    done = segmap("users", "create", "root1", "--admin", "--data", str(tmp_path), stdin="pw\n")
    assert done.returncode == 0, done.stderr
    assert _check_login(tmp_path, "root1", "pw") is True


def test_users_create_refuses_empty_password(tmp_path: Path) -> None:
    for stdin in ("", "\n", "\r\n"):
        done = segmap("users", "create", "bob", "--data", str(tmp_path), stdin=stdin)
        assert done.returncode == 1
        assert "password is empty" in done.stderr
        assert "Traceback" not in done.stderr
    assert _check_login(tmp_path, "bob", "") is None


def test_users_create_refuses_duplicates_and_bad_names(tmp_path: Path) -> None:
    assert segmap("users", "create", "bob", "--data", str(tmp_path), stdin="a\n").returncode == 0
    done = segmap("users", "create", "BOB", "--data", str(tmp_path), stdin="b\n")
    assert done.returncode == 1 and "already exists" in done.stderr
    done = segmap("users", "create", "bad name", "--data", str(tmp_path), stdin="b\n")
    assert done.returncode == 1 and "not allowed" in done.stderr
    assert _check_login(tmp_path, "bob", "a") is False


def test_segmap_data_sets_default_folder(tmp_path: Path) -> None:
    env = _env(SEGMAP_DATA=str(tmp_path / "from-env"))
    done = segmap("users", "create", "carol", stdin="pw\n", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from-env" / "segmap.sqlite3").is_file()
    listed = segmap("users", "list", env=env)
    assert listed.returncode == 0
    assert listed.stdout.split() == ["carol", "user"]


def test_users_set_password(tmp_path: Path) -> None:
    segmap("users", "create", "dan", "--data", str(tmp_path), stdin="old\n")
    done = segmap("users", "set-password", "dan", "--data", str(tmp_path), stdin="new\n")
    assert done.returncode == 0, done.stderr
    assert _check_login(tmp_path, "dan", "new") is False
    done = segmap("users", "set-password", "ghost", "--data", str(tmp_path), stdin="x\n")
    assert done.returncode == 1 and "ghost" in done.stderr


def test_users_without_subcommand_is_usage_error(tmp_path: Path) -> None:
    assert segmap("users").returncode == 2
    assert segmap("users", "create", "--data", str(tmp_path)).returncode == 2


def wait_for_http(url: str, alive: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``url`` until something answers; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"the server exited before answering at {url}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} within {timeout_s} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_on_empty_folder_and_says_how_to_add_users(
    tmp_path: Path, database_url: str | None
) -> None:
    data = tmp_path / "fresh"
    port = _free_port()
    extra = {"SEGMAP_DATABASE_URL": database_url} if database_url else {}
    proc = subprocess.Popen(
        [*SEGMAP, "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**extra),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/docs", alive=lambda: proc.poll() is None)
        assert httpx.get(base + "/docs").status_code == 200
        r = httpx.get(base + "/api/v1/projects")
        assert r.status_code == 401 and "detail" in r.json()
        env = _env(**extra)
        created = segmap("users", "create", "eve", "--data", str(data), stdin="pw\n", env=env)
        assert created.returncode == 0, created.stderr
        token = httpx.post(base + "/api/v1/auth/token", json={"username": "eve", "password": "pw"})
        assert token.status_code == 200
        me = httpx.get(
            base + "/api/v1/me", headers={"Authorization": f"Bearer {token.json()['token']}"}
        )
        assert me.json()["username"] == "eve"
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert "no user accounts" in err
    assert "segmap users create" in err
    assert proc.returncode == 0
    if database_url is None:
        assert (data / "segmap.sqlite3").is_file()
    assert (data / "secret_key").is_file()
    assert (data / "storage").is_dir()


def test_serve_refuses_bad_limit(tmp_path: Path) -> None:
    done = segmap("serve", "--data", str(tmp_path), "--max-upload-bytes", "0")
    assert done.returncode == 2
    assert "max-upload-bytes" in done.stderr


def test_help_and_version() -> None:
    for command in (["serve"], ["users"], ["users", "create"], ["users", "set-password"]):
        assert segmap(*command, "--help").returncode == 0, command
        version = segmap(*command, "--version")
        assert version.returncode == 0 and version.stdout.startswith("segmap "), command
