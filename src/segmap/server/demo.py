"""``segmap serve --demo``: a demo project made on the first start in an empty data folder.

It holds what a newcomer needs to see the whole workflow at once: a generated abdomen CT
session with an RTSTRUCT of seven regions (:mod:`segmap.testing`), two models
with region maps and automation on, and a demo account that owns the project. Storing
the RTSTRUCT queues one job per model; the job runner converts them as soon as the
service starts, so the masks, previews and reports are there within a minute.

The demo account's password is random; it is printed once and kept in
``DATA/demo-credentials.txt`` (readable by the owner of the data folder only).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from segmap.server.db.accounts import User
from segmap.server.db.engine import Database
from segmap.server.db.registry import Project
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import principal_of

DEMO_USER = "demo"
DEMO_PROJECT = "DEMO"
DEMO_PROJECT_NAME = "segmap demo: synthetic abdomen CT"
CREDENTIALS_FILE = "demo-credentials.txt"
MAP_FOLDER = "region-map"
COLLECTION_LABEL = "Annotator 1"
# (label, description, voxel spacing x, y, z in mm, region map in painting order)
DEMO_MODELS: tuple[tuple[str, str, tuple[float, float, float], dict[str, int]], ...] = (
    (
        "abdomen-ct",
        "Seven abdominal structures at 2 x 2 x 4 mm",
        (2.0, 2.0, 4.0),
        {
            "Body": 1,
            "Liver": 10,
            "Spleen": 20,
            "Kidneys": 30,
            "Aorta": 40,
            "Vertebra": 50,
            "Lesion": 60,
        },
    ),
    (
        "liver-lesion",
        "Liver and its lesion at 1 x 1 x 3 mm",
        (1.0, 1.0, 3.0),
        {"Liver": 1, "Lesion": 2},
    ),
)
GRID_SIZE = (192, 192, 48)  # voxels along columns, rows, slices
GRID_SPACING = (1.5, 1.5, 3.0)  # mm


@dataclass(frozen=True)
class DemoStatus:
    """What ``prepare_demo`` did: ``created`` now, or found earlier; the password if new."""

    created: bool
    username: str
    password: str | None
    project: str
    message: str


def _is_empty(database: Database) -> bool:
    with database.session() as db:
        users = db.scalar(select(func.count()).select_from(User)) or 0
        projects = db.scalar(select(func.count()).select_from(Project)) or 0
    return users == 0 and projects == 0


def _demo_exists(database: Database) -> bool:
    with database.session() as db:
        return db.get(Project, DEMO_PROJECT) is not None


def prepare_demo(settings: Settings) -> DemoStatus:
    """Make the demo project in an empty data folder; otherwise say what is there.

    Call it before the app is created (it migrates the database itself). Returns how to
    log in. The conversion jobs are queued, not run: the service's job runner runs them
    when it starts.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    try:
        database.migrate()
        return _prepare(database, LocalStorage(settings.storage_dir), settings)
    finally:
        database.dispose()


def _prepare(database: Database, storage: LocalStorage, settings: Settings) -> DemoStatus:
    if _demo_exists(database):
        return DemoStatus(
            False,
            DEMO_USER,
            None,
            DEMO_PROJECT,
            f"demo project {DEMO_PROJECT} is here; log in as {DEMO_USER!r} with "
            f"the password in {settings.data_dir / CREDENTIALS_FILE}",
        )
    if not _is_empty(database):
        return DemoStatus(
            False,
            DEMO_USER,
            None,
            DEMO_PROJECT,
            "--demo: the data folder already holds accounts or projects, so no "
            "demo was made; give an empty --data folder to get one",
        )
    password = secrets.token_urlsafe(12)
    _write_credentials(settings.data_dir, password)
    with tempfile.TemporaryDirectory(prefix="segmap-demo-") as temp:
        _build(database, storage, settings, Path(temp), password)
    return DemoStatus(
        True,
        DEMO_USER,
        password,
        DEMO_PROJECT,
        f"made demo project {DEMO_PROJECT}: log in as {DEMO_USER!r} with password "
        f"{password!r} (also in {settings.data_dir / CREDENTIALS_FILE}); its "
        "masks are being made now (see the Jobs page)",
    )


def _write_credentials(data_dir: Path, password: str) -> None:
    path = data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"username: {DEMO_USER}\npassword: {password}\n")


def _build(
    database: Database, storage: LocalStorage, settings: Settings, temp: Path, password: str
) -> None:
    from segmap import testing as syn
    from segmap.server.accounts.service import create_user
    from segmap.server.app import imaging_events
    from segmap.server.imaging.collection_upload import put_collection
    from segmap.server.imaging.upload import upload_dicom
    from segmap.server.registry.files import save_file
    from segmap.server.registry.mlmodels import create_model
    from segmap.server.registry.projects import create_project
    from segmap.server.registry.regionmap import REGION_MAP_FILENAME

    grid = syn.axial_grid(GRID_SIZE, GRID_SPACING)
    identity = syn.StudyIdentity(
        patient_id="DEMO001",
        patient_name="Demo^Phantom",
        study_instance_uid=syn.StudyIdentity.generate(7).study_instance_uid,
        study_date="20240315",
    )
    case = syn.make_case(temp / "case", grid, seed=7, identity=identity)
    with database.session(write=True) as db:
        user = create_user(db, DEMO_USER, password)
        who = principal_of(user, "demo")
        create_project(db, who, DEMO_PROJECT, DEMO_PROJECT_NAME)
        for label, description, spacing, values in DEMO_MODELS:
            create_model(
                db,
                who,
                DEMO_PROJECT,
                label=label,
                description=description,
                voxel_spacing=spacing,
                automation=True,
            )
            text = "".join(f"{name}={value}\n" for name, value in values.items())
            save_file(
                db,
                storage,
                who,
                DEMO_PROJECT,
                label,
                MAP_FOLDER,
                REGION_MAP_FILENAME,
                text.encode("utf-8"),
                settings.max_upload_bytes,
            )
    with database.session(write=True) as db:
        result = upload_dicom(db, storage, who, DEMO_PROJECT, list(case.series.files))
        session_id = result.sessions[0].session.id
    with database.session(write=True) as db:
        put_collection(
            db,
            storage,
            who,
            DEMO_PROJECT,
            session_id,
            COLLECTION_LABEL,
            "RTSTRUCT",
            case.rtstruct_path,
            events=imaging_events(),
            max_bytes=settings.max_upload_bytes,
        )
