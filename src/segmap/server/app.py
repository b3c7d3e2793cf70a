"""The application factory: ``create_app(settings)`` puts the features together.

This is the one module that knows every feature: it opens the shared parts (database,
storage, the cookie session), mounts each feature's API and page routers, and wires the
features to each other through ``app.state`` (jobs listens to imaging's "collection
stored"). The features themselves import only ``web``, ``db`` and the features below
them: jobs -> imaging -> registry -> accounts.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

import segmap
from segmap.server.accounts import api as accounts_api
from segmap.server.accounts import pages as accounts_pages
from segmap.server.db.engine import Database
from segmap.server.dicomweb import index as dicomweb_index
from segmap.server.dicomweb import router as dicomweb_router
from segmap.server.imaging import api_collections, api_sessions
from segmap.server.imaging import pages as imaging_pages
from segmap.server.imaging.events import ImagingEvents
from segmap.server.jobs import api as jobs_api
from segmap.server.jobs import pages as jobs_pages
from segmap.server.jobs.automation import on_collection_stored
from segmap.server.jobs.lifespan import job_runner_lifespan
from segmap.server.registry import (
    api_files,
    api_models,
    api_projects,
    pages_editor,
    pages_models,
    pages_projects,
)
from segmap.server.settings import Settings, load_or_create_secret
from segmap.server.storage import LocalStorage
from segmap.server.web import errors
from segmap.server.web.pages import STATIC_DIR, STATIC_PATH
from segmap.server.web.session_cookie import CookieSessionMiddleware

log = logging.getLogger("segmap.server")

NO_USERS_HINT = (
    "segmap has no user accounts yet. Create an administrator with:\n"
    "    echo 'a-good-password' | segmap users create admin --admin --data {data}\n"
    "then log in at the service's address."
)

API_ROUTERS: tuple[APIRouter, ...] = (
    accounts_api.router,
    api_projects.router,
    api_models.router,
    api_files.router,
    api_sessions.router,
    api_collections.router,
    jobs_api.router,
)
PAGE_ROUTERS: tuple[APIRouter, ...] = (
    accounts_pages.router,
    pages_projects.router,
    pages_models.router,
    pages_editor.router,
    imaging_pages.router,
    jobs_pages.router,
)


def imaging_events() -> ImagingEvents:
    """Who hears of imaging's events in a full service: jobs' automation."""
    return ImagingEvents(on_collection_stored=(on_collection_stored,))


def create_app(settings: Settings) -> FastAPI:
    """Build the service for ``settings``: migrate the database, open storage, mount routes.

    Works on an empty data folder. Logs how to create the first account when none exists.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    storage = LocalStorage(settings.storage_dir)
    storage.sweep_staging()
    indexed = dicomweb_index.backfill(database, storage)  # instances stored before the index
    if indexed:
        log.info("indexed %d stored instance(s) for DICOMweb", indexed)
    secret = load_or_create_secret(settings.data_dir)

    app = FastAPI(
        lifespan=job_runner_lifespan,
        title="segmap",
        version=segmap.__version__,
        description=(
            "Projects, machine-learning models and their file resources, with the region "
            "map (region2MaskValueMap.txt) of each model; imaging sessions, ROI collections "
            "and the conversion jobs that turn them into masks. Authenticate with "
            "`Authorization: Bearer <token>` from `POST /api/v1/auth/token`."
        ),
    )
    app.state.settings = settings
    app.state.database = database
    app.state.storage = storage
    app.state.imaging_events = imaging_events()
    app.add_middleware(
        CookieSessionMiddleware,
        secret=secret,
        max_age_s=settings.session_max_age_s,
        secure=settings.secure_cookies,
    )
    errors.install(app)
    for router in API_ROUTERS:
        app.include_router(router)
    dicomweb_router.mount(app, settings.cors_origins)  # /dicomweb/projects/{project}
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    if database.user_count() == 0:
        log.warning(NO_USERS_HINT.format(data=settings.data_dir))
    return app
