"""Of several services on one database, one follows each project's archive at a time.

Every ``segmap serve`` runs a follower per connected project (:mod:`.follower`). Left
alone, services sharing a database would each read the archive's changes, fetch the same
series and push the same masks, and race each other's cursor. So following is leased,
like jobs and imports: the connection row names the service following it
(``follower``, the service's lease token) and until when (``follower_lease_expires_at``).
A follower takes the connection, or renews its hold, before each step of following;
while another service holds it, it leaves the changes and the pushes to that one (and
still runs imports by hand, which are leased one by one). The holder renews the lease
on a thread while a step runs, lets go when its service stops (the next service takes
over at its next round), and a service that died is taken over once its lease runs out.

Taking is one ``UPDATE ... WHERE`` the connection is free, lapsed or already ours: on
PostgreSQL the row lock makes a second taker re-check the condition against the first
one's update, on SQLite one writer at a time does the same, so one service wins.
"""

from __future__ import annotations

from sqlalchemy import or_, update

from segmap.server.db.archive import ArchiveConnection
from segmap.server.db.base import utcnow
from segmap.server.db.engine import Database
from segmap.server.db.leases import Lease, Renewer


def hold(database: Database, lease: Lease, project_id: str, generation: int) -> bool:
    """Take or renew ``lease``'s hold on following the project's archive (committed);
    whether it holds it now. False when another service holds a live lease, or the
    connection is gone or was saved again (``generation`` changed)."""
    m = ArchiveConnection
    now = utcnow()
    free = or_(
        m.follower.is_(None),
        m.follower == lease.token,
        m.follower_lease_expires_at.is_(None),
        m.follower_lease_expires_at < now,
    )
    with database.session(write=True) as db:
        result = db.execute(
            update(m)
            .where(m.project_id == project_id, m.generation == generation, free)
            .values(follower=lease.token, follower_lease_expires_at=lease.expiry(now))
        )
        db.commit()
    return getattr(result, "rowcount", 0) == 1


def renewer(database: Database, lease: Lease, project_id: str, generation: int) -> Renewer:
    """Keeps the hold while a step of following runs (a ``db.leases.Renewer``)."""
    return Renewer(
        lambda: hold(database, lease, project_id, generation),
        lease,
        f"following the archive of project {project_id}",
    )


def let_go(database: Database, token: str, project_id: str) -> None:
    """Give up following the project's archive if ``token`` holds it (committed)."""
    m = ArchiveConnection
    with database.session(write=True) as db:
        db.execute(
            update(m)
            .where(m.project_id == project_id, m.follower == token)
            .values(follower=None, follower_lease_expires_at=None)
        )
        db.commit()
