"""Configuration of the web service: where its data lives and its limits."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from segmap.errors import SegmapError
from segmap.server.private_files import write_file_once

DATA_ENV = "SEGMAP_DATA"
DATABASE_ENV = "SEGMAP_DATABASE_URL"
MAX_UPLOAD_ENV = "SEGMAP_MAX_UPLOAD_BYTES"
DASK_ENV = "SEGMAP_DASK_SCHEDULER"
TOKEN_MAX_AGE_ENV = "SEGMAP_TOKEN_MAX_AGE_S"
JOB_LEASE_ENV = "SEGMAP_JOB_LEASE_S"
CORS_ORIGINS_ENV = "SEGMAP_CORS_ORIGINS"
# A running job's claim lapses this long after its runner last renewed it (every third
# of it); then another service takes the job over. Long against a stalled moment of a
# busy service and against clock skew between hosts, short against a restart.
DEFAULT_JOB_LEASE_S = 60.0
# API tokens are for scripts; a month keeps a forgotten one from working for ever while
# sparing a nightly job a new log-in every day.
DEFAULT_TOKEN_MAX_AGE_S = 30 * 24 * 3600

DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024**3

# Zip uploads and DICOM headers (issue 9). A CT of 2000 slices is ~2000 entries and ~1 GB;
# a whole exported study with several series rarely passes 20,000 files.
ZIP_MAX_ENTRIES_ENV = "SEGMAP_ZIP_MAX_ENTRIES"
DEFAULT_ZIP_MAX_ENTRIES = 50_000
# Unpacked bytes per compressed byte. Real images deflate 2-10x; blank slices far more, so
# the ratio is only applied beyond the grace below (per entry and per archive). Deflate
# can reach ~1030x, which is what a bomb uses.
ZIP_MAX_RATIO_ENV = "SEGMAP_ZIP_MAX_RATIO"
DEFAULT_ZIP_MAX_RATIO = 100
ZIP_RATIO_GRACE_ENV = "SEGMAP_ZIP_RATIO_GRACE_BYTES"
DEFAULT_ZIP_RATIO_GRACE_BYTES = 16 * 1024**2
MAX_UNZIPPED_ENV = "SEGMAP_MAX_UNZIPPED_BYTES"
# All entries of one upload together, when not set: this many times the per-file limit.
UNZIPPED_FACTOR = 4
# How much of each file is read, in memory, to judge its DICOM header before the rest is
# unpacked; headers of images are a few kB, large SEG and RTSTRUCT headers may go on
# past it (they are then judged on what was read).
DICOM_PROBE_ENV = "SEGMAP_DICOM_PROBE_BYTES"
DEFAULT_DICOM_PROBE_BYTES = 1024**2
# The background sweep of stored files no row refers to (left by a crash).
ORPHAN_SWEEP_ENV = "SEGMAP_ORPHAN_SWEEP_INTERVAL_S"
DEFAULT_ORPHAN_SWEEP_INTERVAL_S = 6 * 3600.0
ORPHAN_MIN_AGE_ENV = "SEGMAP_ORPHAN_MIN_AGE_S"
# Younger files may belong to an upload or job that has not committed yet.
DEFAULT_ORPHAN_MIN_AGE_S = 3600.0
SECRET_FILE = "secret_key"
SQLITE_FILE = "segmap.sqlite3"


class SettingsError(SegmapError):
    """A setting (flag or environment variable) that cannot be used."""


def default_data_dir() -> Path:
    """The data folder when none is given: ``$SEGMAP_DATA``, else ``~/.local/share/segmap``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "segmap"


@dataclass(frozen=True)
class Settings:
    """Everything ``create_app`` needs.

    Attributes:
        data_dir: folder holding the SQLite database, the secret key and ``storage/``.
        database_url: SQLAlchemy URL; None means SQLite in ``data_dir``. PostgreSQL is
            ``postgresql+psycopg://user:password@host/dbname``.
        max_upload_bytes: largest file accepted by one upload, in bytes.
        secure_cookies: True/False forces the cookie ``Secure`` flag; None (default) sets
            it exactly when the request arrived over https (uvicorn honours
            ``X-Forwarded-Proto`` from trusted proxies).
        session_max_age_s: how long a log-in lasts, in seconds.
        token_max_age_s: how long an API token lasts, in seconds (0: forever); set by
            ``SEGMAP_TOKEN_MAX_AGE_S``.
        dask_scheduler: address of a Dask scheduler for jobs (None: local workers).
        workers: size of the local job worker pool.
        job_lease_s: how long a running job's claim lasts unrenewed, in seconds; a job
            whose service died runs again this long after (``SEGMAP_JOB_LEASE_S``).
        ohif_dir: folder of the installed OHIF viewer; None: ``$SEGMAP_OHIF_DIR``, else
            ``<sys.prefix>/share/segmap/ohif`` (where ``scripts/install-ohif.py`` puts it).
        zip_max_entries: most entries (files and folders) one uploaded zip may list
            (``SEGMAP_ZIP_MAX_ENTRIES``).
        zip_max_ratio: most unpacked bytes per compressed byte, for each zip entry and
            for a whole archive, past ``zip_ratio_grace_bytes`` (``SEGMAP_ZIP_MAX_RATIO``).
        zip_ratio_grace_bytes: unpacked bytes of an entry, and of an archive, to which
            the ratio does not apply yet (``SEGMAP_ZIP_RATIO_GRACE_BYTES``).
        max_unzipped_bytes: most bytes all zip entries of one upload unpack to; None
            means 4 x ``max_upload_bytes`` (``SEGMAP_MAX_UNZIPPED_BYTES``).
        dicom_probe_bytes: first bytes of each file judged as a DICOM header before the
            rest is unpacked (``SEGMAP_DICOM_PROBE_BYTES``).
        orphan_sweep_interval_s: seconds between sweeps that delete stored imaging files
            no row refers to; 0 turns the sweep off (``SEGMAP_ORPHAN_SWEEP_INTERVAL_S``).
        orphan_min_age_s: the sweep spares files younger than this, in seconds
            (``SEGMAP_ORPHAN_MIN_AGE_S``).
        cors_origins: origins (``https://viewer.example.org``) whose pages may call the
            DICOMweb roots from the browser; empty (default): CORS is off. Set by
            ``SEGMAP_CORS_ORIGINS``, comma-separated.
    """

    data_dir: Path
    database_url: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    secure_cookies: bool | None = None
    session_max_age_s: int = 14 * 24 * 3600
    token_max_age_s: int = DEFAULT_TOKEN_MAX_AGE_S
    dask_scheduler: str | None = None
    workers: int = 2
    job_lease_s: float = DEFAULT_JOB_LEASE_S
    ohif_dir: Path | None = None
    zip_max_entries: int = DEFAULT_ZIP_MAX_ENTRIES
    zip_max_ratio: int = DEFAULT_ZIP_MAX_RATIO
    zip_ratio_grace_bytes: int = DEFAULT_ZIP_RATIO_GRACE_BYTES
    max_unzipped_bytes: int | None = None
    dicom_probe_bytes: int = DEFAULT_DICOM_PROBE_BYTES
    orphan_sweep_interval_s: float = DEFAULT_ORPHAN_SWEEP_INTERVAL_S
    orphan_min_age_s: float = DEFAULT_ORPHAN_MIN_AGE_S
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None, **overrides: object) -> Settings:
        """Settings from the environment (``SEGMAP_*``), with explicit values winning."""
        folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        base = cls(
            data_dir=folder,
            database_url=os.environ.get(DATABASE_ENV) or None,
            max_upload_bytes=_env_count(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_BYTES, "bytes"),
            token_max_age_s=_env_count(TOKEN_MAX_AGE_ENV, DEFAULT_TOKEN_MAX_AGE_S, "seconds"),
            dask_scheduler=os.environ.get(DASK_ENV) or None,
            job_lease_s=_env_seconds(JOB_LEASE_ENV, DEFAULT_JOB_LEASE_S),
            zip_max_entries=_env_count(ZIP_MAX_ENTRIES_ENV, DEFAULT_ZIP_MAX_ENTRIES, "entries"),
            zip_max_ratio=_env_count(
                ZIP_MAX_RATIO_ENV, DEFAULT_ZIP_MAX_RATIO, "unpacked bytes per compressed byte"
            ),
            zip_ratio_grace_bytes=_env_count(
                ZIP_RATIO_GRACE_ENV, DEFAULT_ZIP_RATIO_GRACE_BYTES, "bytes"
            ),
            max_unzipped_bytes=_env_optional_count(MAX_UNZIPPED_ENV, "bytes"),
            dicom_probe_bytes=_env_count(DICOM_PROBE_ENV, DEFAULT_DICOM_PROBE_BYTES, "bytes"),
            orphan_sweep_interval_s=_env_seconds(
                ORPHAN_SWEEP_ENV, DEFAULT_ORPHAN_SWEEP_INTERVAL_S, allow_zero=True
            ),
            orphan_min_age_s=_env_seconds(
                ORPHAN_MIN_AGE_ENV, DEFAULT_ORPHAN_MIN_AGE_S, allow_zero=True
            ),
            cors_origins=_env_origins(CORS_ORIGINS_ENV),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the configured one or SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / SQLITE_FILE).resolve()}"

    @property
    def storage_dir(self) -> Path:
        """Folder of the local file storage."""
        return self.data_dir / "storage"

    @property
    def effective_max_unzipped_bytes(self) -> int:
        """``max_unzipped_bytes``, or 4 x ``max_upload_bytes`` when it is not set."""
        if self.max_unzipped_bytes is not None:
            return self.max_unzipped_bytes
        return UNZIPPED_FACTOR * self.max_upload_bytes


def _env_count(name: str, default: int, unit: str) -> int:
    """A whole number >= 0 from environment variable ``name``, else ``default``."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number of {unit}") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    return value


def _env_optional_count(name: str, unit: str) -> int | None:
    """Like ``_env_count``, with None when the variable is not set."""
    return _env_count(name, 0, unit) if os.environ.get(name) else None


def _env_seconds(name: str, default: float, *, allow_zero: bool = False) -> float:
    """A positive number of seconds from environment variable ``name``, else ``default``.

    ``allow_zero`` accepts 0 too (for settings where 0 turns something off).
    """
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if allow_zero and value == 0:
        return value
    if not value > 0 or value == float("inf"):
        what = "0 or a positive" if allow_zero else "a positive"
        raise SettingsError(f"{name}={raw!r} must be {what} number of seconds")
    return value


def _env_origins(name: str) -> tuple[str, ...]:
    """Origins from a comma-separated environment variable: ``scheme://host[:port]`` each."""
    raw = os.environ.get(name, "")
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (
            scheme not in ("http", "https") or not sep or not rest or "/" in rest
        ):
            raise SettingsError(
                f"{name}: {origin!r} is not an origin; write scheme://host[:port], e.g. "
                "https://viewer.example.org, several separated by commas"
            )
    return origins


def load_or_create_secret(data_dir: Path) -> str:
    """The key that signs session cookies, made once and kept in ``data_dir/secret_key``.

    Kept on disk so log-ins survive restarts; made whole or not at all
    (``private_files.write_file_once``), so processes starting together agree on one
    key and none reads a key file not yet written.
    """
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        write_file_once(path, secrets.token_urlsafe(48).encode("ascii"))
    key = path.read_text().strip()
    if key:
        return key
    raise SettingsError(f"{path} is empty: delete it and start again to make a new key")
