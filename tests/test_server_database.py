"""Database sessions: SQLite writers queue instead of failing; read steps take no lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from segmap.server.db.accounts import User
from segmap.server.db.engine import Database, read_first


def _db(tmp_path: Path, url: str | None) -> Database:
    db = Database(url or f"sqlite:///{tmp_path / 'x.sqlite3'}")
    db.migrate()
    return db


def _add_user(session: object, name: str) -> None:
    session.add(  # type: ignore[attr-defined]
        User(username=name, username_key=name, password_hash="x", is_admin=False, is_active=True)
    )


def test_concurrent_writers_all_succeed(tmp_path: Path, database_url: str | None) -> None:
    database = _db(tmp_path, database_url)
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def writer(i: int) -> None:
        try:
            start.wait()
            with database.session(write=True) as s:
                s.execute(text("SELECT count(*) FROM users")).scalar()  # read, then write
                time.sleep(0.01)
                _add_user(s, f"user{i}")
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert database.user_count() == 12
    database.dispose()


def test_read_step_does_not_wait_for_a_writer(tmp_path: Path, database_url: str | None) -> None:
    database = _db(tmp_path, database_url)
    with database.session(write=True) as holder:
        _add_user(holder, "held")
        holder.flush()  # the write lock (SQLite) is now held until commit
        took: list[float] = []

        def reader() -> None:
            with database.session(write=True) as s:
                read_first(s)
                t = time.monotonic()
                s.execute(text("SELECT count(*) FROM users")).scalar()
                took.append(time.monotonic() - t)
                s.rollback()

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the read step waited for the writer"
        assert took and took[0] < 2.0
        holder.commit()
    database.dispose()
