"""The options ``segmap serve`` and ``segmap users`` share: where the service keeps its data."""

from __future__ import annotations

import argparse
from pathlib import Path

from segmap.server.settings import DATA_ENV, DATABASE_ENV, Settings, default_data_dir


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
