"""The database: engine set-up for SQLite and PostgreSQL, sessions, and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so SQLAlchemy's BEGIN below is
        # the only one (the documented SQLAlchemy recipe for pysqlite).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once (no busy wait)
        # when another writer committed in between; write sessions take the lock up front.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """One engine and its session factories.

    ``session()`` is for reading (and short writes on PostgreSQL); ``session(write=True)``
    starts every transaction with the write lock on SQLite, so read-then-write sequences
    never fail with "database is locked".
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        writer: Engine
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
            writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
            writer = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)

    def session(self, write: bool = False) -> Session:
        """A new session; the caller closes it (use it in a ``with`` block)."""
        return (self._write if write else self._read)()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Session]:
        """A session that commits when the block ends normally and rolls back otherwise."""
        with self.session(write=write) as db, db.begin():
            yield db

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (no alembic.ini needed)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def user_count(self) -> int:
        """How many accounts exist (0 on a fresh install)."""
        from segmap.server.orm import User

        with self.session() as db:
            return int(db.scalar(select(func.count()).select_from(User)) or 0)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
