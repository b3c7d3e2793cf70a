"""A private Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) for tests and benchmarks.

:class:`OrthancServer` runs ``/usr/sbin/Orthanc`` as an ordinary process with a
configuration folder it writes itself (Orthanc merges every JSON file of a folder given as
its configuration argument):

* storage and index in a work folder (temporary unless given), so nothing touches
  ``/var/lib/orthanc``;
* HTTP on a free port; Orthanc 1.10 has no bind-address setting, so
  ``RemoteAccessAllowed: false`` makes it answer loopback clients only;
* the DICOM (DIMSE) server off, the DICOMweb plugin on at ``/dicom-web/``;
* optional HTTP Basic credentials; ``StableAge`` (seconds) settable, since the archive
  tests wait for ``StableSeries`` and the default 60 s would make them slow.

``start()`` waits until ``GET /system`` answers (polling, bounded by a deadline, failing
early with the log when the process exits); ``stop()`` terminates it. Both can be called
again, keeping the storage, so a test can restart the archive. Use it as a context
manager::

    with OrthancServer(stable_age_s=2) as orthanc:
        orthanc.store_instance(path.read_bytes())
        httpx.get(f"{orthanc.dicomweb_url}/studies", auth=orthanc.auth)

Standard library only (``urllib``): it is used by tests, benchmarks and possibly the
demo, and must not pull a test-only HTTP client into the package.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

ORTHANC_EXECUTABLE = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
DICOMWEB_ROOT = "/dicom-web"


class OrthancError(RuntimeError):
    """Orthanc could not be started, or refused a request; the message says why."""


@dataclass(frozen=True)
class Credentials:
    """HTTP Basic credentials Orthanc is configured to require."""

    username: str
    password: str

    def header(self) -> str:
        """The ``Authorization`` header value."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def missing_parts() -> str | None:
    """Why Orthanc cannot run here (a sentence naming the Debian package), or None."""
    if not ORTHANC_EXECUTABLE.is_file():
        return f"{ORTHANC_EXECUTABLE} not found: install the Debian package 'orthanc'"
    if not DICOMWEB_PLUGIN.is_file():
        return f"{DICOMWEB_PLUGIN} not found: install the Debian package 'orthanc-dicomweb'"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    """One Orthanc process on 127.0.0.1 with its own storage.

    Args:
        workdir: folder for configuration, storage and the log; a temporary folder
            (removed by :meth:`close`) when None.
        port: HTTP port; a free one when None. Kept across restarts.
        credentials: require HTTP Basic with these; None leaves authentication off.
        stable_age_s: Orthanc's ``StableAge`` (seconds without a new instance before a
            series, study or patient is reported stable).
        extra_config: more top-level configuration keys, merged over the defaults (for
            example ``{"DicomWeb": {...}}`` to change the plugin's settings).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        port: int | None = None,
        credentials: Credentials | None = None,
        stable_age_s: int = 60,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        reason = missing_parts()
        if reason is not None:
            raise OrthancError(reason)
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="segmap-orthanc-")) if workdir is None else Path(workdir)
        )
        self.port = port if port is not None else free_port()
        self.credentials = credentials
        self.stable_age_s = stable_age_s
        self._extra = dict(extra_config or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    # --- where things are -----------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the REST API, e.g. ``http://127.0.0.1:8042`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (QIDO-RS, WADO-RS, STOW-RS), no trailing slash."""
        return f"{self.url}{DICOMWEB_ROOT}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """``(username, password)`` for HTTP clients, or None when no credentials."""
        if self.credentials is None:
            return None
        return (self.credentials.username, self.credentials.password)

    @property
    def storage_dir(self) -> Path:
        """Where Orthanc keeps its files and index."""
        return self.workdir / "storage"

    @property
    def log_path(self) -> Path:
        """Orthanc's standard output and error (appended across restarts)."""
        return self.workdir / "orthanc.log"

    @property
    def running(self) -> bool:
        """True while the process started by :meth:`start` is alive."""
        return self._process is not None and self._process.poll() is None

    # --- life cycle ------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Start Orthanc and return once its REST API answers; no-op when running."""
        if self.running:
            return
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(ORTHANC_EXECUTABLE), str(self.workdir / "config")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_until_up(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL after ``timeout_s``); storage is kept."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop, and remove the work folder when this object created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OrthancServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- small REST helpers ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> bytes:
        """Call the REST API (``path`` starts with ``/``); raises OrthancError on non-2xx."""
        all_headers = dict(headers or {})
        if self.credentials is not None:
            all_headers.setdefault("Authorization", self.credentials.header())
        req = urllib.request.Request(
            f"{self.url}{path}", data=body, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise OrthancError(f"{method} {path}: HTTP {exc.code} {detail}") from exc

    def get_json(self, path: str) -> Any:
        """``GET path`` decoded as JSON."""
        return json.loads(self.request("GET", path))

    def store_instance(self, dicom: bytes) -> dict[str, Any]:
        """``POST /instances`` with a Part-10 file; Orthanc's answer (``ID``, ``Status``...)."""
        answer = json.loads(
            self.request("POST", "/instances", dicom, {"Content-Type": "application/dicom"})
        )
        if not isinstance(answer, dict) or answer.get("Status") not in ("Success", "AlreadyStored"):
            raise OrthancError(f"POST /instances was not stored: {answer!r}")
        return answer

    def store_files(self, paths: list[Path]) -> list[str]:
        """Store Part-10 files; returns their Orthanc instance IDs in the same order."""
        return [str(self.store_instance(Path(p).read_bytes())["ID"]) for p in paths]

    # --- internals ---------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "Name": "segmap-test",
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.storage_dir),
            "HttpPort": self.port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "StableAge": self.stable_age_s,
            "SaveJobs": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Root": f"{DICOMWEB_ROOT}/",
                "EnableWado": True,
                "WadoRoot": "/wado",
                "Host": "127.0.0.1",
                "Ssl": False,
            },
            "AuthenticationEnabled": self.credentials is not None,
            "RegisteredUsers": {}
            if self.credentials is None
            else {self.credentials.username: self.credentials.password},
        }
        config.update(self._extra)
        return config

    def _write_config(self) -> None:
        folder = self.workdir / "config"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "orthanc.json").write_text(json.dumps(self._config(), indent=2), encoding="utf-8")

    def _wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                self._process = None
                raise OrthancError(f"Orthanc exited while starting:\n{self._log_tail()}")
            try:
                self.request("GET", "/system", timeout_s=2.0)
                return
            except (OrthancError, OSError):
                time.sleep(0.05)  # poll interval; the loop ends on success or the deadline
        self.stop()
        raise OrthancError(f"Orthanc did not answer within {timeout_s:g} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        except OSError:
            return "(no log)"
