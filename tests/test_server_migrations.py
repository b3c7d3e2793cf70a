"""The Alembic migrations build exactly the schema the ORM describes, on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from segmap.server.db.engine import MIGRATIONS_DIR, Database
from segmap.server.db.schema import metadata
from segmap.server.settings import Settings


def _head() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.effective_database_url)


def test_migrations_match_orm(settings: Settings) -> None:
    db = _database(settings)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
        assert diff == [], f"ORM and migrations disagree: {diff}"
    finally:
        db.dispose()


def test_migrate_twice_is_harmless_and_records_head(settings: Settings) -> None:
    db = _database(settings)
    try:
        db.migrate()
        db.migrate()
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            assert ctx.get_current_revision() == _head()
            tables = set(inspect(conn).get_table_names())
        assert {"users", "api_tokens", "projects", "memberships", "models"} <= tables
        assert {"resource_folders", "resource_files", "alembic_version"} <= tables
    finally:
        db.dispose()


def test_sqlite_file_lives_in_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    db = _database(settings)
    try:
        db.migrate()
    finally:
        db.dispose()
    assert (tmp_path / "d" / "segmap.sqlite3").is_file()
