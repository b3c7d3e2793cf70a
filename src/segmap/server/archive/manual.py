"""Imports asked for by hand: ``POST .../archive/import`` and ``segmap archive import``.

:func:`queue_import` checks the caller (owners and site admins) and the UIDs, and queues
an ``archive_imports`` row; the project's follower runs queued rows first in each round
(:func:`run_queued`), and the command line runs its own row at once
(:func:`run_import`). A study is imported whole: its annotations with the series they
reference, and its other image series. Progress is the share of series done; the
follower's rules hold (a series imported before is not fetched again, segmap's own SEGs
are not imported).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from segmap.imaging.uids import uid_problem
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
from segmap.server.errors import Conflict, NotFound, Unprocessable
from segmap.server.web.auth import Principal


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


def start_import(db: Session, project_id: str, studies: list[str], series: list[str]) -> int:
    """A running import row for the command line, which runs it itself; its id.

    No caller to check: whoever can open the data folder and database may (as with
    ``segmap users``). The project must be connected (``Conflict`` otherwise).
    """
    if db.get(ArchiveConnection, project_id) is None:
        raise Conflict(
            f"project {project_id!r} is not connected to an archive; connect it "
            "on its Archive page or with PUT /api/v1/projects/{project}/archive"
        )
    return _add(db, project_id, studies, series, None, IMPORT_RUNNING).id


def _add(
    db: Session,
    project_id: str,
    studies: list[str],
    series: list[str],
    user_id: int | None,
    state: str,
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


def run_queued(target: ImportTarget, client: ArchiveClient, stop: threading.Event) -> None:
    """Run the project's queued imports, oldest first, until none is left or ``stop``."""
    while not stop.is_set():
        with target.database.session() as db:
            next_id = db.scalar(
                select(ArchiveImport.id)
                .where(
                    ArchiveImport.project_id == target.project_id,
                    ArchiveImport.state == IMPORT_QUEUED,
                )
                .order_by(ArchiveImport.id)
                .limit(1)
            )
        if next_id is None or not _claim(target, next_id):
            return
        run_import(target, client, next_id)


def _claim(target: ImportTarget, import_id: int) -> bool:
    with target.database.session(write=True) as db:
        done = db.execute(
            update(ArchiveImport)
            .where(
                ArchiveImport.id == import_id,
                ArchiveImport.state == IMPORT_QUEUED,
            )
            .values(state=IMPORT_RUNNING, stage="starting")
        )
        db.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]


def run_import(
    target: ImportTarget,
    client: ArchiveClient,
    import_id: int,
    report: Callable[[str, float], None] = lambda _stage, _done: None,
) -> ArchiveImport:
    """Run one claimed (running) import to its end; the finished row.

    The archive failing midway fails the import with the reason (what was stored
    stays); the follower then backs off as usual.
    """
    with target.database.session() as db:
        row = db.get(ArchiveImport, import_id)
        assert row is not None
        studies, series_uids = list(row.studies), list(row.series)
    imported = 0
    try:
        _set(target, import_id, stage="listing series")
        refs = _series_to_import(client, studies, series_uids)
        for n, ref in enumerate(refs):

            def say(stage: str, n: int = n) -> None:
                share = n / max(1, len(refs))
                _set(target, import_id, stage=stage[:255], progress=share)
                report(stage, share)

            if ref.modality in ANNOTATION_MODALITIES:
                done = import_annotation_series(target, client, ref, say, by_hand=True)
                imported += done.event == "imported"
            else:
                imported += import_image_series(target, client, ref, say) > 0
        state, error = IMPORT_SUCCEEDED, None
        stage = f"done: {imported} series imported of {len(refs)} found"
    except ArchiveError as exc:
        state, error, stage = IMPORT_FAILED, str(exc), "failed"
    _set(
        target,
        import_id,
        state=state,
        error=error,
        stage=stage,
        imported=imported,
        progress=1.0 if state == IMPORT_SUCCEEDED else None,
        finished_at=utcnow(),
    )
    with target.database.session() as db:
        finished = db.get(ArchiveImport, import_id)
        assert finished is not None
        db.expunge(finished)
        return finished


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


def _set(target: ImportTarget, import_id: int, **values: object) -> None:
    with target.database.session(write=True) as db:
        row = db.get(ArchiveImport, import_id)
        if row is None:
            return
        for key, value in values.items():
            if value is not None or key == "error":
                setattr(row, key, value)
        db.commit()
