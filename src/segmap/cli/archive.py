"""The ``segmap archive`` commands: ``import`` studies or series from a project's archive.

``segmap archive import --project P --study UID [--series UID ...]`` pulls them now
through the project's archive connection (set on its Archive page or with ``PUT
/api/v1/projects/P/archive``), on the service's data folder and database, as the account
that connected the archive; it prints each step and what was imported. Imported
annotations queue the automated models' jobs, which the running ``segmap serve`` converts.

Exit status: 0 imported, 1 the import failed (one line saying why), 2 usage errors. The
database and the services load inside the handler, so ``segmap --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from segmap.cli.common import command, needs_subcommand
from segmap.cli.datafolder import add_data_options, settings_for
from segmap.errors import SegmapError

ARCHIVE_HELP = "pull studies or series from a project's lab archive"
EXAMPLE = "example:\n  segmap archive import --project LIVER01 --study 1.2.826.0.1.3680043.8.498.1"


def add_parser(subparsers: Any) -> None:
    """Add ``segmap archive`` and its ``import`` sub-command."""
    group = command(
        subparsers,
        "archive",
        help=ARCHIVE_HELP,
        description="Work with the lab archive (Orthanc or DICOMweb) a project follows.",
    )
    group.set_defaults(handler=needs_subcommand(group))
    sub = group.add_subparsers(dest="archive_command", metavar="ARCHIVE_COMMAND")
    pull = command(
        sub,
        "import",
        help="import studies or series now",
        description=(
            "Import studies (whole: images and annotations) or series from the project's "
            "archive now. The project must be connected to an archive."
        ),
        epilog=EXAMPLE,
    )
    pull.add_argument("--project", required=True, help="project id")
    pull.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="UID",
        help="StudyInstanceUID to import (repeatable)",
    )
    pull.add_argument(
        "--series",
        action="append",
        default=[],
        metavar="UID",
        help="SeriesInstanceUID to import (repeatable)",
    )
    add_data_options(pull)
    pull.set_defaults(handler=run_archive_import)


def run_archive_import(args: argparse.Namespace) -> int:
    """Run one import to its end, printing its steps; 0 when it succeeded."""
    from sqlalchemy import select

    from segmap.server.app import imaging_events
    from segmap.server.archive import manual
    from segmap.server.archive.clients import ArchiveError
    from segmap.server.archive.follower import ServiceParts, open_connection
    from segmap.server.archive.secrets import secret_box
    from segmap.server.db.archive import IMPORT_SUCCEEDED, ArchiveConnection
    from segmap.server.db.engine import Database
    from segmap.server.db.leases import Lease, holder_token
    from segmap.server.db.registry import Project
    from segmap.server.errors import ServiceError
    from segmap.server.names import name_key
    from segmap.server.storage import LocalStorage

    if not args.study and not args.series:
        raise SegmapError("segmap archive import: give --study UID or --series UID")
    settings = settings_for(args)
    lease = Lease(holder_token(), settings.job_lease_s)  # SEGMAP_JOB_LEASE_S, as services
    database = Database(settings.effective_database_url)
    try:
        database.migrate()
        parts = ServiceParts(
            database,
            LocalStorage(settings.storage_dir),
            imaging_events(),
            secret_box(settings.data_dir),
            settings.max_upload_bytes,
        )
        with database.session(write=True) as db:
            project = db.scalar(select(Project).where(Project.id_key == name_key(args.project)))
            if project is None:
                raise SegmapError(f"there is no project {args.project!r} in {settings.data_dir}")
            row = db.get(ArchiveConnection, project.id)
            try:
                import_id = manual.start_import(
                    db, project.id, args.study, args.series, lease=lease
                )
            except ServiceError as exc:
                raise SegmapError(exc.message) from exc
            assert row is not None
            db.expunge(row)
        try:
            target, client = open_connection(parts, row)
        except ArchiveError as exc:
            raise SegmapError(str(exc)) from exc
        try:
            done = manual.run_import(
                target,
                client,
                import_id,
                report=lambda stage, share: print(f"[{share:4.0%}] {stage}"),
                lease=lease,
            )
        finally:
            client.close()
    finally:
        database.dispose()
    if done.state != IMPORT_SUCCEEDED:
        sys.stderr.write(f"segmap archive import: {done.error}\n")
        return 1
    print(f"import {done.id}: {done.stage}")
    return 0
