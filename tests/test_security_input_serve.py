"""Configuration mistakes of ``segmap serve``: one clear line and a non-zero exit (issue 9,
point 4), run as a user runs it -- the real command in a subprocess.

Before, each of these ended in "internal error ... This is a bug in segmap" (or in
uvicorn's log after the database was migrated and the job workers had started).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SEGMAP = [sys.executable, "-m", "segmap.cli"]


def _serve(
    *args: str, user: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", user, "--"] if user else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    return subprocess.run(
        [*prefix, *SEGMAP, "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
    )


def _one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line the command printed on stderr, after checking it failed cleanly."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{done.stderr}"
    line = lines[0]
    assert line.startswith("segmap serve: "), line
    assert "bug" not in line and "Traceback" not in done.stderr, line
    return line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unknown_database_scheme_is_one_line(tmp_path: Path) -> None:
    done = _serve("--data", str(tmp_path / "d"), "--database-url", "nosuchdb://u:pw@host/x")
    line = _one_clear_line(done)
    assert "--database-url" in line and "nosuchdb" in line and "postgresql+psycopg://" in line
    assert "pw@" not in line  # the password is never printed


def test_unparsable_database_url_is_one_line(tmp_path: Path) -> None:
    done = _serve("--data", str(tmp_path / "d"), "--database-url", "not a url at all")
    line = _one_clear_line(done)
    assert "--database-url" in line


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    url = f"postgresql+psycopg://segmap:s3cret-pw@127.0.0.1:{port}/segmap"
    done = _serve("--data", str(tmp_path / "d"), "--database-url", url)
    line = _one_clear_line(done)
    assert "cannot open the database" in line and f"127.0.0.1:{port}" in line
    assert "s3cret-pw" not in done.stderr


def test_data_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    line = _one_clear_line(_serve("--data", str(blocker / "inner")))
    assert "data folder" in line and str(blocker / "inner") in line


def test_data_folder_not_writable_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes through file modes; sysfs refuses new files even to root.
        data = Path("/sys")
        if not data.is_dir():
            pytest.skip("running as root without /sys: no folder root cannot write")
        done = _serve("--data", str(data))
    else:
        data = tmp_path / "readonly"
        data.mkdir()
        data.chmod(0o555)
        try:
            done = _serve("--data", str(data))
        finally:
            data.chmod(0o755)
    line = _one_clear_line(done)
    assert f"data folder {data} cannot be written" in line and "--data" in line


def test_port_in_use_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "d"
        line = _one_clear_line(_serve("--data", str(data), "--port", str(port)))
    assert f"port {port}" in line and "in use" in line and "--port" in line
    # Refused before the database was made: nothing was started for nothing.
    assert not (data / "segmap.sqlite3").exists()


def test_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    line = _one_clear_line(_serve("--data", str(tmp_path / "d"), "--port", "70000"))
    assert "70000" in line


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nosuchdb://u:pw@host/x", "is not a database URL segmap can use"),
        ("not a url at all", "--database-url"),
        ("postgresql+psycopg://segmap:pw@127.0.0.1:{port}/segmap", "cannot open the database"),
    ],
)
def test_users_commands_say_the_same_one_line(tmp_path: Path, url: str, expected: str) -> None:
    # `segmap users` opens the same database as `serve`; its mistakes read the same.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    done = subprocess.run(
        [*SEGMAP, "users", "list", "--data", str(tmp_path / "d"), "--database-url",
         url.format(port=_free_port())],
        capture_output=True, text=True, timeout=60, env=env, cwd="/",
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("segmap users list: ") and expected in lines[0], lines[0]
    assert "bug" not in lines[0] and "pw@" not in done.stderr


def test_users_command_on_a_data_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    done = subprocess.run(
        [*SEGMAP, "users", "list", "--data", str(blocker / "inner")],
        capture_output=True, text=True, timeout=60, env=env, cwd="/",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("segmap users list: cannot use the data folder"), done.stderr
    assert "bug" not in done.stderr and "Traceback" not in done.stderr
