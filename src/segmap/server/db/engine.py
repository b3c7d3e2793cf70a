"""The engine: set-up for SQLite and PostgreSQL, sessions, and running the migrations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_HOLDS_WRITER_LOCK = "segmap_holds_writer_lock"
_WRITER_WAIT_S = 30.0
# Any fixed number: the PostgreSQL advisory lock that lets one process migrate at a time.
_MIGRATION_LOCK_ID = 0x5E6A_0001


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

    # SQLite lets one writer in at a time and makes the others poll with growing sleeps
    # (up to 100 ms each), which under many concurrent uploads wastes most of the time.
    # Writers of this process queue on a lock instead and start the moment it is free;
    # other processes still meet SQLite's own busy timeout.
    writer_lock = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once (no busy wait)
        # when another writer committed in between; write sessions take the lock up front.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE" and writer_lock.acquire(timeout=_WRITER_WAIT_S):
            # On timeout (a thread holding the lock opened a second write session, say)
            # fall through to SQLite's own waiting rather than deadlock here.
            conn.info[_HOLDS_WRITER_LOCK] = True
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            _release(conn.info)
            raise

    def _release(info: dict[str, Any]) -> None:
        if info.pop(_HOLDS_WRITER_LOCK, False):
            writer_lock.release()

    event.listen(engine, "commit", lambda conn: _release(conn.info))
    event.listen(engine, "rollback", lambda conn: _release(conn.info))
    # Belt and braces: a connection going back to the pool never keeps the lock.
    event.listen(engine.pool, "checkin", lambda _dbapi, record: _release(record.info))
    return engine


def read_first(db: Session) -> None:
    """Start ``db``'s next transaction without SQLite's write lock (for a read-only step).

    Write sessions otherwise take the lock at their first statement; a service that
    checks things before slow work calls this, then ``db.rollback()`` after the check.
    No effect when a transaction is already open, and none on PostgreSQL.
    """
    if not db.in_transaction():
        db.connection(execution_options={"sqlite_begin": "DEFERRED"})


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
            if not self.is_sqlite:
                # Several services starting on one database at once: one migrates, the
                # others wait here and then find nothing left to do. (On SQLite the
                # migration's first write takes the database lock.)
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def user_count(self) -> int:
        """How many accounts exist (0 on a fresh install)."""
        from segmap.server.db.accounts import User

        with self.session() as db:
            return int(db.scalar(select(func.count()).select_from(User)) or 0)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
