"""Fixtures for the server tests: the app on SQLite and on a real PostgreSQL.

Registered for every test module by ``conftest.py``.

PostgreSQL: when ``SEGMAP_TEST_DATABASE_URL`` names a server (a database URL whose user
may CREATE DATABASE), tests make their databases there. Otherwise a throwaway server is
started for the session with ``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``
(Debian package ``postgresql``), listening only on a Unix socket in a private temporary
folder. PostgreSQL refuses to run as root, so as root the binaries run as the
``postgres`` user. Without the binaries the PostgreSQL cases skip with the reason, and
FAIL in CI (``CI=true``) so a CI image without PostgreSQL cannot pass silently.
"""

from __future__ import annotations

import functools
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from segmap.server.accounts.passwords import hash_password
from segmap.server.accounts.service import issue_token
from segmap.server.app import create_app
from segmap.server.db.accounts import User
from segmap.server.db.engine import Database
from segmap.server.settings import Settings
from segmap.server.web import auth

TEST_DB_ENV = "SEGMAP_TEST_DATABASE_URL"
TEST_MAX_UPLOAD = 3 * 1024 * 1024
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def in_ci() -> bool:
    """Whether this is a CI run (missing services are failures there, not skips)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


@dataclass
class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    admin_url: str
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _template: str | None = None
    _created: list[str] = field(default_factory=list)

    def _url_for(self, dbname: str) -> str:
        return make_url(self.admin_url).set(database=dbname).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def fresh_database(self) -> str:
        """URL of a new, migrated, empty database (copied from a migrated template)."""
        if self._template is None:
            name = f"segmap_tpl_{os.getpid()}"
            self._admin(f'DROP DATABASE IF EXISTS "{name}"')
            self._admin(f'CREATE DATABASE "{name}"')
            db = Database(self._url_for(name))
            db.migrate()
            db.dispose()
            self._template = name
            self._created.append(name)
        name = f"segmap_t_{os.getpid()}_{next(self._counter)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        self._created.append(name)
        return self._url_for(name)

    def drop_all(self) -> None:
        """Drop every database this object made."""
        for name in reversed(self._created):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the session (external via env, else a throwaway one)."""
    external = os.environ.get(TEST_DB_ENV)
    if external:
        server = PgServer(external)
        yield server
        server.drop_all()
        return
    bindir = _pg_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian "
            f"package 'postgresql' or set {TEST_DB_ENV}"
        )
        if in_ci():
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="segmap-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    data = root / "data"
    port = _free_port()
    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "segmap",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    options = (
        f"-c listen_addresses='' -c unix_socket_directories={root} -p {port} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    try:
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
    except RuntimeError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"{exc}\n{log}") from None
    server = PgServer(f"postgresql+psycopg://segmap@/postgres?host={root}&port={port}")
    try:
        yield server
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test case: ``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture()
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data folder) or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    return server.fresh_database()


@pytest.fixture()
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Settings on an empty data folder with a 3 MiB upload limit."""
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, max_upload_bytes=TEST_MAX_UPLOAD
    )


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    """The real application (real database, real storage)."""
    application = create_app(settings)
    yield application
    application.state.database.dispose()


PASSWORD = "correct horse battery staple"


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


@dataclass
class Api:
    """A TestClient with helpers to make users and authenticate as them."""

    client: Any
    app: Any

    def make_user(self, name: str, *, admin: bool = False) -> str:
        """Create a user (password ``PASSWORD``) and return an API token for them.

        The row is inserted with a hash computed once per session: argon2 is slow on
        purpose, and ``create_user`` itself is tested separately.
        """
        with self.app.state.database.session(write=True) as db:
            user = User(
                username=name,
                username_key=name.casefold(),
                password_hash=_password_hash(),
                is_admin=admin,
                is_active=True,
            )
            db.add(user)
            db.commit()
            return issue_token(db, auth.principal_of(user, "token"))

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        """The Authorization header for ``token``."""
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def api(app: Any) -> Iterator[Api]:
    """A client on the app, used as a context manager (lifespan runs)."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield Api(client, app)


@dataclass
class ThreadedServer:
    """The app served by a real uvicorn on 127.0.0.1 in a background thread."""

    url: str
    app: Any


@pytest.fixture()
def threaded_server(app: Any) -> Iterator[ThreadedServer]:
    """Serve ``app`` over real HTTP (for concurrency and streaming tests)."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield ThreadedServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class World:
    """Project ``P`` with one model, and one user of every kind (headers per user).

    ``owner`` created the project; ``member`` and ``collab`` were added by the owner;
    ``admin`` is a site admin outside the project; ``outsider`` has no role.
    """

    api: Api
    headers: dict[str, dict[str, str]]
    model_id: int

    @property
    def client(self) -> Any:
        """The test client."""
        return self.api.client

    def h(self, who: str) -> dict[str, str]:
        """Authorization header of ``who`` (``anon`` gives none)."""
        return {} if who == "anon" else self.headers[who]

    @property
    def project_url(self) -> str:
        """``/api/v1/projects/P``."""
        return "/api/v1/projects/P"

    @property
    def model_url(self) -> str:
        """URL of the model."""
        return f"{self.project_url}/models/{self.model_id}"

    def file_url(self, folder: str, name: str) -> str:
        """URL of a file in a folder of the model (names inserted as given)."""
        return f"{self.model_url}/resources/{folder}/files/{name}"


@pytest.fixture()
def world(api: Api) -> World:
    """See ``World``."""
    headers = {
        name: Api.auth(api.make_user(name, admin=name == "admin"))
        for name in ("admin", "owner", "member", "collab", "outsider")
    }
    c = api.client
    r = c.post("/api/v1/projects", json={"id": "P", "name": "Project P"}, headers=headers["owner"])
    assert r.status_code == 201, r.text
    for username, role in (("member", "member"), ("collab", "collaborator")):
        r = c.post(
            "/api/v1/projects/P/members",
            json={"username": username, "role": role},
            headers=headers["owner"],
        )
        assert r.status_code == 201, r.text
    r = c.post(
        "/api/v1/projects/P/models",
        json={"label": "liver-ct", "description": "Liver", "voxel_spacing": [1.0, 1.0, 2.5]},
        headers=headers["owner"],
    )
    assert r.status_code == 201, r.text
    return World(api=api, headers=headers, model_id=int(r.json()["id"]))
