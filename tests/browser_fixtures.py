"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and a real server.

Registered for every test module by ``conftest.py``. Nothing here
downloads a browser: Playwright drives ``/usr/bin/chromium`` (Debian package ``chromium``).
Without it the tests skip on a workstation and FAIL in CI (``CI=true``), so a CI image
that lost Chromium cannot pass silently.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from segmap.server.accounts.service import authenticate, create_user
from segmap.server.db.engine import Database
from segmap.server.registry.projects import create_project, set_member
from segmap.server.settings import Settings

CHROMIUM = Path(os.environ.get("SEGMAP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run here)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (pages get fresh contexts)."""
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not found: install the Debian package 'chromium'")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def browser_context(chromium_browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) that accepts downloads."""
    context = chromium_browser.new_context(
        accept_downloads=True, viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture()
def page(browser_context: Any) -> Any:
    """A tab in a fresh profile; JavaScript errors on the page fail the test."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert not errors, f"JavaScript errors on the page: {errors}"


# ---------------------------------------------------------------- the real server

PROJECT_ID = "LIVER01"
PROJECT_NAME = "Liver CT study"
# name -> (password, project role or None, site admin)
ACCOUNTS: dict[str, tuple[str, str | None, bool]] = {
    "admin": ("admin-pass-1", None, True),
    "olivia": ("olivia-pass-2", "owner", False),
    "mia": ("mia-pass-3", "member", False),
    "colin": ("colin-pass-4", "collaborator", False),
    "nadia": ("nadia-pass-5", None, False),  # has an account, belongs to no project
}

# Runs in the server's own process, exactly as ``segmap serve`` would build the app.
_SERVER_SCRIPT = """
import sys
from pathlib import Path
import uvicorn
from segmap.server.app import create_app
from segmap.server.settings import Settings
app = create_app(Settings(data_dir=Path(sys.argv[1]), max_upload_bytes=int(sys.argv[3])))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""

MAX_UPLOAD = 8 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A segmap service running in its own process on 127.0.0.1, and ways to drive it."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)
    project_id: str = PROJECT_ID
    project_name: str = PROJECT_NAME

    def log_in(self, page: Any, username: str) -> None:
        """Log in through the log-in form, as a person would, and land on the project list."""
        page.goto(f"{self.url}/login")
        page.fill("#username", username)
        page.fill("#password", self.password(username))
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}/projects")

    def password(self, username: str) -> str:
        """The password the fixture gave ``username``."""
        return ACCOUNTS[username][0]

    def token(self, username: str) -> str:
        """An API token for ``username`` (from ``POST /api/v1/auth/token``)."""
        if username not in self.tokens:
            answer = httpx.post(
                f"{self.url}/api/v1/auth/token",
                json={"username": username, "password": self.password(username)},
            )
            answer.raise_for_status()
            self.tokens[username] = answer.json()["token"]
        return self.tokens[username]

    def api(
        self, method: str, path: str, username: str = "olivia", **kwargs: Any
    ) -> httpx.Response:
        """Call the REST API as ``username`` with a bearer token."""
        headers = {"Authorization": f"Bearer {self.token(username)}"}
        url = f"{self.url}/api/v1{path}"
        return httpx.request(method, url, headers=headers, timeout=30, **kwargs)

    def create_model(
        self, label: str, spacing: tuple[float, float, float] = (1.0, 1.0, 2.5)
    ) -> None:
        """Install a model in the test project through the API (as its owner)."""
        answer = self.api(
            "POST",
            f"/projects/{PROJECT_ID}/models",
            json={"label": label, "description": f"{label} test model", "voxel_spacing": spacing},
        )
        assert answer.status_code == 201, answer.text

    def upload(self, label: str, folder: str, name: str, data: bytes) -> httpx.Response:
        """Upload one file into a model's folder through the API (as the owner)."""
        path = f"/projects/{PROJECT_ID}/models/{label}/resources/{folder}/files/{name}"
        return self.api("PUT", path, content=data)

    def folders(self, label: str) -> dict[str, dict[str, dict[str, Any]]]:
        """The model's folders as the API lists them: ``{folder: {file name: file}}``."""
        answer = self.api("GET", f"/projects/{PROJECT_ID}/models/{label}/resources")
        answer.raise_for_status()
        return {f["name"]: {x["name"]: x for x in f["files"]} for f in answer.json()}


def _seed(data_dir: Path) -> None:
    """Accounts, the project and its members, written before the server starts."""
    settings = Settings(data_dir=data_dir)
    database = Database(settings.effective_database_url)
    database.migrate()
    try:
        with database.session(write=True) as db:
            for name, (password, _role, is_admin) in ACCOUNTS.items():
                create_user(db, name, password, is_admin=is_admin)
        with database.session(write=True) as db:
            owner = authenticate(db, "olivia", ACCOUNTS["olivia"][0])
            assert owner is not None
            create_project(db, owner, PROJECT_ID, PROJECT_NAME)
            for name, (_password, role, _admin) in ACCOUNTS.items():
                if role is not None and role != "owner":
                    set_member(db, owner, PROJECT_ID, name, role)
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real service (uvicorn, SQLite in a temporary data folder) for one test module.

    Accounts: ``admin`` (site admin), ``olivia`` (owner of LIVER01), ``mia`` (member),
    ``colin`` (collaborator), ``nadia`` (no project).
    """
    data_dir = tmp_path_factory.mktemp("segmap-data")
    _seed(data_dir)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER_SCRIPT, str(data_dir), str(port), str(MAX_UPLOAD)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir, process)
    try:
        _wait_until_up(server, data_dir / "server.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_up(server: LiveServer, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"segmap server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{server.url}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"segmap server did not answer within 60 s:\n{log_path.read_text()}")
