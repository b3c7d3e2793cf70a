"""What ``segmap serve`` and ``segmap users`` share: where the service keeps its data, and
one sentence for each way opening it can fail because of the configuration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from segmap.errors import SegmapError
from segmap.server.settings import DATA_ENV, DATABASE_ENV, Settings, default_data_dir

if TYPE_CHECKING:
    from segmap.server.db.engine import Database


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--data DIR`` and ``--database-url URL``."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"data folder (default: ${DATA_ENV}, else {default_data_dir()})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help=f"SQLAlchemy database URL (default: ${DATABASE_ENV}, else SQLite in the data folder)",
    )


def settings_for(args: argparse.Namespace, **overrides: object) -> Settings:
    """The service's settings for these arguments (and the environment), with overrides."""
    extra = dict(overrides)
    if getattr(args, "database_url", None):
        extra["database_url"] = args.database_url
    return Settings.from_env(args.data, **extra)


def open_database(settings: Settings) -> Database:
    """The service's database for ``settings``, migrated to the current schema.

    Raises:
        SegmapError: one sentence when the configuration is at fault (a URL that is no
            database URL, a server that cannot be reached, a data folder that cannot be
            used); anything else is a fault of segmap and propagates.
    """
    from segmap.server.db.engine import Database

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.effective_database_url)
        database.migrate()
    except Exception as exc:
        problem = startup_problem(exc, settings.effective_database_url, settings.data_dir)
        if problem is None:
            raise
        raise SegmapError(problem) from None
    return database


def startup_problem(exc: Exception, database_url: str, data_dir: Path) -> str | None:
    """One sentence for a start-up failure caused by the configuration, or None.

    The database URL is shown without its password.
    """
    from sqlalchemy import exc as sa_exc

    shown = _safe_url(database_url)
    if isinstance(exc, (sa_exc.ArgumentError, sa_exc.NoSuchModuleError)):
        return (
            f"--database-url {shown} is not a database URL segmap can use ({_first_line(exc)}); "
            "use postgresql+psycopg://USER:PASSWORD@HOST/DBNAME, or leave it out for "
            "SQLite in the data folder"
        )
    if isinstance(exc, ImportError):
        return f"the database driver for {shown} is not installed ({exc})"
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        reason = _first_line(exc.orig if exc.orig is not None else exc)
        return (
            f"cannot open the database {shown} ({reason}); check that it is running and "
            "the URL, user and password are right"
        )
    if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError | FileExistsError):
        return f"cannot use the data folder {data_dir} ({exc.strerror or exc})"
    return None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: show only what comes before any credentials
        return repr(url.split("://", 1)[0] + "://...") if "://" in url else repr(url[:40])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
