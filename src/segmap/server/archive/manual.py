"""Imports asked for by hand: ``POST .../archive/import`` and ``segmap archive import``.

:func:`queue_import` checks the caller (owners and site admins) and the UIDs, and queues
an ``archive_imports`` row; the project's follower claims queued rows first in each round
(:func:`run_queued`), and the command line makes its row already claimed and runs it at
once (:func:`start_import`, :func:`run_import`). A study is imported whole: its
annotations with the series they reference, and its other image series. Progress is the
share of series done; the follower's rules hold (a series imported before is not fetched
again, segmap's own SEGs are not imported).

A running import is leased (:mod:`.import_leases`): only its holder changes its row, so
services sharing a database run each import once. A service stopping puts the import it
runs back in the queue; one that died leaves it to be taken over when its lease expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from segmap.imaging.uids import uid_problem
from segmap.server.archive import import_leases
from segmap.server.archive.clients import ArchiveClient, ArchiveError, SeriesRef
from segmap.server.archive.connections import managed
from segmap.server.archive.importer import (
    ANNOTATION_MODALITIES,
    ImportTarget,
    import_annotation_series,
    import_image_series,
)
from segmap.server.db.archive import (
    IMPORT_FAILED,
    IMPORT_QUEUED,
    IMPORT_RUNNING,
    IMPORT_SUCCEEDED,
    ArchiveConnection,
    ArchiveImport,
)
from segmap.server.db.base import utcnow
from segmap.server.db.leases import Lease, Renewer
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.web.auth import Principal

log = logging.getLogger("segmap.server.archive")


def queue_import(
    db: Session,
    principal: Principal | None,
    project: str,
    studies: list[str],
    series: list[str],
) -> ArchiveImport:
    """Queue an import of ``studies`` and ``series`` (UIDs) for the project (committed)."""
    access = managed(db, principal, project, "import from the archive")
    if db.get(ArchiveConnection, access.project.id) is None:
        raise Conflict(
            f"project {access.project.id!r} is not connected to an archive; "
            "connect it first (PUT .../archive)"
        )
    return _add(db, access.project.id, studies, series, access.principal.id, IMPORT_QUEUED)


def start_import(
    db: Session,
    project_id: str,
    studies: list[str],
    series: list[str],
    *,
    lease: Lease,
) -> int:
    """A running import row for the command line, which runs it itself; its id.

    The row is made already claimed, under ``lease`` (the command's, as long as
    ``Settings.job_lease_s``), so no service's follower takes it while
    :func:`run_import` renews it; if the command dies, a follower takes it over once the
    lease runs out. No caller to check: whoever can open the data folder and database
    may (as with ``segmap users``). The project must be connected (``Conflict``
    otherwise).
    """
    if db.get(ArchiveConnection, project_id) is None:
        raise Conflict(
            f"project {project_id!r} is not connected to an archive; connect it "
            "on its Archive page or with PUT /api/v1/projects/{project}/archive"
        )
    now = utcnow()
    claimed = {
        "runner": lease.token,
        "lease_expires_at": lease.expiry(now),
        "attempts": 1,
        "started_at": now,
        "stage": "starting",
    }
    return _add(db, project_id, studies, series, None, IMPORT_RUNNING, **claimed).id


def _add(
    db: Session,
    project_id: str,
    studies: list[str],
    series: list[str],
    user_id: int | None,
    state: str,
    **claimed: Any,
) -> ArchiveImport:
    studies = [u.strip() for u in studies]
    series = [u.strip() for u in series]
    problems = [
        f"{what} UID {u!r} {p}"
        for what, uids in (("study", studies), ("series", series))
        for u in uids
        if (p := uid_problem(u)) is not None
    ]
    if not studies and not series:
        problems.append("give at least one study or series UID")
    if problems:
        raise Unprocessable("; ".join(problems), problems=problems)
    row = ArchiveImport(
        project_id=project_id,
        studies=list(dict.fromkeys(studies)),
        series=list(dict.fromkeys(series)),
        created_by_id=user_id,
        state=state,
        **claimed,
    )
    db.add(row)
    db.commit()
    return row


def get_import(
    db: Session, principal: Principal | None, project: str, import_id: int
) -> ArchiveImport:
    """One import of the project (404 when it has no such import)."""
    access = managed(db, principal, project, "see archive imports")
    row = db.get(ArchiveImport, import_id)
    if row is None or row.project_id != access.project.id:
        raise NotFound(f"project {access.project.id!r} has no archive import {import_id}")
    return row


def run_queued(
    target: ImportTarget, client: ArchiveClient, stop: threading.Event, lease: Lease
) -> None:
    """Claim and run the project's imports, oldest first, until none is left or ``stop``."""
    while not stop.is_set():
        import_id = import_leases.claim(target.database, lease, target.project_id)
        if import_id is None:
            return
        run_import(target, client, import_id, lease=lease, stop=stop)


def run_import(
    target: ImportTarget,
    client: ArchiveClient,
    import_id: int,
    report: Callable[[str, float], None] = lambda _stage, _done: None,
    *,
    lease: Lease,
    stop: threading.Event | None = None,
) -> ArchiveImport:
    """Run one claimed (running) import to its end under ``lease`` (the one it was
    claimed or started with); the row as it ends.

    The lease is renewed on a thread meanwhile. The archive
    failing midway fails the import with the reason (what was stored stays); the
    follower then backs off as usual. ``stop`` set (the service stops) puts the import
    back in the queue at its next step; an import lost to another service (this one
    stalled past its lease) is left to it, unchanged.
    """
    with target.database.session() as db:
        row = db.get(ArchiveImport, import_id)
        assert row is not None
        studies, series_uids = list(row.studies), list(row.series)
    held = _Held(
        target,
        import_id,
        lease.token,
        import_leases.renewer(target.database, lease, import_id),
        stop,
    )
    try:
        _run(held, client, studies, series_uids, report)
    except _Interrupted:
        if held.renewer.lost.is_set():
            log.warning("archive import %s was taken over by another service", import_id)
        else:
            import_leases.release(
                target.database,
                import_id,
                held.token,
                "queued again: the service stopped while it ran",
            )
    finally:
        held.renewer.stop()
    with target.database.session() as db:
        finished = db.get(ArchiveImport, import_id)
        assert finished is not None
        db.expunge(finished)
        return finished


@dataclass(frozen=True)
class _Held:
    """An import this process holds while it runs it."""

    target: ImportTarget
    import_id: int
    token: str
    renewer: Renewer
    stop: threading.Event | None

    def change(self, **values: Any) -> None:
        """Record progress; ``_Interrupted`` when stopping or no longer the holder."""
        if (self.stop is not None and self.stop.is_set()) or self.renewer.lost.is_set():
            raise _Interrupted
        if not import_leases.change(self.target.database, self.import_id, self.token, **values):
            self.renewer.lost.set()
            raise _Interrupted

    def finish(self, state: str, stage: str, imported: int, error: str | None = None) -> None:
        """Record how it ended, and release it."""
        import_leases.finish(
            self.target.database,
            self.import_id,
            self.token,
            state=state,
            stage=stage,
            imported=imported,
            error=error,
            **({"progress": 1.0} if state == IMPORT_SUCCEEDED else {}),
        )


def _run(
    held: _Held,
    client: ArchiveClient,
    studies: list[str],
    series_uids: list[str],
    report: Callable[[str, float], None],
) -> None:
    target, imported = held.target, 0
    try:
        held.change(stage="listing series")
        refs = _series_to_import(client, studies, series_uids)
        for n, ref in enumerate(refs):

            def say(stage: str, n: int = n) -> None:
                share = n / max(1, len(refs))
                held.change(stage=stage[:255], progress=share)
                report(stage, share)

            if ref.modality in ANNOTATION_MODALITIES:
                done = import_annotation_series(target, client, ref, say, by_hand=True)
                imported += done.event == "imported"
            else:
                imported += import_image_series(target, client, ref, say) > 0
    except _Interrupted:
        raise
    except ArchiveError as exc:
        held.finish(IMPORT_FAILED, "failed", imported, str(exc))
        return
    except Exception as exc:
        # Failed, not left to be run again by the next service: it would fail the same
        # way. The follower logs the traceback.
        error = f"internal error ({type(exc).__name__}); the service log has the details"
        held.finish(IMPORT_FAILED, "failed", imported, error)
        raise
    held.finish(
        IMPORT_SUCCEEDED, f"done: {imported} series imported of {len(refs)} found", imported
    )


class _Interrupted(Exception):
    """The import stops here: the service is stopping, or the import is not ours now."""


def _series_to_import(
    client: ArchiveClient, studies: list[str], series: list[str]
) -> list[SeriesRef]:
    refs: list[SeriesRef] = []
    for study in studies:
        found = client.study_series(study)
        if not found:
            raise _Missing(f"the archive holds no study {study}")
        refs.extend(found)
    for uid in series:
        ref = client.find_series(uid)
        if ref is None:
            raise _Missing(f"the archive holds no series {uid}")
        refs.append(ref)
    # Images first, so an annotation finds its scan even when it references another study.
    unique = {r.series_uid: r for r in refs}
    return sorted(unique.values(), key=lambda r: r.modality in ANNOTATION_MODALITIES)


class _Missing(ArchiveError):
    """A UID asked for that the archive does not hold."""
