"""Settings from the environment, and the secret key that outlives restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from race_helpers import call_together
from segmap.server.accounts.service import create_user
from segmap.server.app import create_app
from segmap.server.settings import (
    DEFAULT_MAX_UPLOAD_BYTES,
    Settings,
    SettingsError,
    default_data_dir,
    load_or_create_secret,
)
from segmap.server.web import auth


def test_environment_sets_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGMAP_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("SEGMAP_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("SEGMAP_MAX_UPLOAD_BYTES", "12345")
    monkeypatch.setenv("SEGMAP_DASK_SCHEDULER", "tcp://10.0.0.1:8786")
    s = Settings.from_env()
    assert s.data_dir == tmp_path / "env-data"
    assert s.effective_database_url == "postgresql+psycopg://u@h/db"
    assert s.max_upload_bytes == 12345
    assert s.dask_scheduler == "tcp://10.0.0.1:8786"
    explicit = Settings.from_env(tmp_path / "flag", max_upload_bytes=7)
    assert explicit.data_dir == tmp_path / "flag" and explicit.max_upload_bytes == 7


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SEGMAP_DATA", "SEGMAP_DATABASE_URL", "SEGMAP_MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "segmap"
    s = Settings.from_env()
    assert s.max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES
    expected = (tmp_path / "xdg" / "segmap" / "segmap.sqlite3").resolve()
    assert s.effective_database_url == f"sqlite:///{expected}"


def test_bad_upload_limit_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMAP_MAX_UPLOAD_BYTES", "2GB")
    with pytest.raises(SettingsError, match="SEGMAP_MAX_UPLOAD_BYTES"):
        Settings.from_env()


def test_job_lease_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMAP_JOB_LEASE_S", raising=False)
    assert Settings.from_env().job_lease_s == 60.0
    monkeypatch.setenv("SEGMAP_JOB_LEASE_S", "2.5")
    assert Settings.from_env().job_lease_s == 2.5
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv("SEGMAP_JOB_LEASE_S", bad)
        with pytest.raises(SettingsError, match=f"SEGMAP_JOB_LEASE_S={bad!r}"):
            Settings.from_env()


def test_secret_is_created_once_private_and_kept(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(tmp_path) == first


def test_login_survives_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")

    app = create_app(settings)
    with app.state.database.session(write=True) as db:
        user = create_user(db, "alice", "pw")
        principal = auth.principal_of(user, "session")

    @app.post("/api/test/login")
    def login(request: Request) -> dict[str, str]:
        auth.login(request, principal)
        return {}

    with TestClient(app) as client:
        client.post("/api/test/login")
        cookie = client.cookies["segmap_session"]
    app.state.database.dispose()

    restarted = create_app(settings)
    with TestClient(restarted) as client:
        client.cookies.set("segmap_session", cookie)
        assert client.get("/api/v1/me").json()["username"] == "alice"
    restarted.state.database.dispose()


def cookie_key(_caller: str, folder: str) -> str:
    """For :func:`race_helpers.call_together`: the cookie key of ``folder``."""
    return load_or_create_secret(Path(folder))


def test_services_starting_together_agree_on_one_cookie_key(tmp_path: Path) -> None:
    """Six processes of four threads each ask for the key of a new data folder at once:
    every one gets the same key, none an empty one, and no temporary file is left."""
    for round_ in range(3):
        folder = tmp_path / f"data-{round_}"
        lines = call_together(
            "test_server_settings:cookie_key", [str(folder)], processes=6, threads=4
        )
        assert len(lines) == 24
        assert len(set(lines)) == 1 and not lines[0].startswith("ERROR"), set(lines)
        assert len(lines[0]) >= 40
        assert lines[0] == (folder / "secret_key").read_text().strip()
        assert [p.name for p in folder.iterdir()] == ["secret_key"], "no temporary file left"


def test_an_empty_cookie_key_file_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(SettingsError, match="secret_key is empty"):
        load_or_create_secret(tmp_path)
    assert (tmp_path / "secret_key").read_text() == ""
