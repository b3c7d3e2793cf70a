"""The application factory: ``create_app(settings)`` puts the features together.

This is the one module that knows every feature: it opens the shared parts (database,
storage, the cookie session), mounts each feature's API and page routers, and wires the
features to each other through ``app.state`` (jobs listens to imaging's "collection
stored"), and runs the background work (job runner, dataset worker) with the app. The
features themselves import only ``web``, ``db`` and the features below them:
datasets, jobs -> imaging -> registry -> accounts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

import segmap
from segmap.server.accounts import api as accounts_api
from segmap.server.accounts import pages as accounts_pages
from segmap.server.archive import api as archive_api
from segmap.server.archive import pages as archive_pages
from segmap.server.archive.lifespan import followers_lifespan
from segmap.server.datasets import api as datasets_api
from segmap.server.datasets import pages as datasets_pages
from segmap.server.datasets.lifespan import dataset_worker_lifespan
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
from segmap.server.jobs.runner import WORK_DIR
from segmap.server.private_files import create_private_file, make_private_dir
from segmap.server.registry import (
    api_files,
    api_models,
    api_projects,
    pages_editor,
    pages_models,
    pages_projects,
)
from segmap.server.settings import SQLITE_FILE, Settings, load_or_create_secret
from segmap.server.storage import LocalStorage
from segmap.server.viewer import pages as viewer_pages
from segmap.server.viewer import routes as viewer_routes
from segmap.server.viewer.dist import find_dist
from segmap.server.web import api_docs, disconnects, errors
from segmap.server.web.headers import BrowserHeaders
from segmap.server.web.pages import STATIC_DIR, STATIC_PATH
from segmap.server.web.path_check import refuse_unnameable_references
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
    datasets_api.router,
    archive_api.router,
)
PAGE_ROUTERS: tuple[APIRouter, ...] = (
    accounts_pages.router,
    pages_projects.router,
    pages_models.router,
    pages_editor.router,
    imaging_pages.router,
    jobs_pages.router,
    datasets_pages.router,
    viewer_routes.router,
    archive_pages.router,
    viewer_pages.router,
)


def imaging_events() -> ImagingEvents:
    """Who hears of imaging's events in a full service: jobs' automation."""
    return ImagingEvents(on_collection_stored=(on_collection_stored,))


class SegmapApp(FastAPI):
    """FastAPI whose every answer, a 500 from Starlette's outermost handler included,
    carries the browser headers (:mod:`segmap.server.web.headers`)."""

    def build_middleware_stack(self) -> ASGIApp:
        """The usual stack, wrapped in :class:`BrowserHeaders`."""
        return BrowserHeaders(super().build_middleware_stack())


@asynccontextmanager
async def background_work(app: FastAPI) -> AsyncIterator[None]:
    """The service's background threads, started with the app and stopped with it
    (the archive followers stop first: they store what the job runner converts)."""
    async with job_runner_lifespan(app), dataset_worker_lifespan(app), followers_lifespan(app):
        yield


def create_app(settings: Settings) -> FastAPI:
    """Build the service for ``settings``: migrate the database, open storage, mount routes.

    Works on an empty data folder. Logs how to create the first account when none exists.
    What it creates in the data folder is owner-only (``private_files``).
    """
    make_private_dir(settings.data_dir)
    if not settings.database_url:
        # SQLite gives its -wal and -shm files the database file's mode: create it 0600.
        create_private_file(settings.data_dir / SQLITE_FILE)
    make_private_dir(settings.data_dir / WORK_DIR)
    database = Database(settings.effective_database_url)
    database.migrate()
    storage = LocalStorage(settings.storage_dir)
    storage.sweep_staging()
    indexed = dicomweb_index.backfill(database, storage)  # instances stored before the index
    if indexed:
        log.info("indexed %d stored instance(s) for DICOMweb", indexed)
    secret = load_or_create_secret(settings.data_dir)

    app = SegmapApp(
        lifespan=background_work,
        dependencies=[Depends(refuse_unnameable_references)],
        docs_url=None,  # served from local files by web.api_docs (no CDN)
        redoc_url=None,
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
    app.state.ohif_dist = find_dist(settings.ohif_dir)
    app.add_middleware(
        CookieSessionMiddleware,
        secret=secret,
        max_age_s=settings.session_max_age_s,
        secure=settings.secure_cookies,
    )
    errors.install(app)
    # Added last, so outermost: it sees every response and every escaped exception.
    app.add_middleware(errors.ErrorBoundary)
    disconnects.install(app)
    api_docs.install(app)
    # DICOMweb first: routes are tried in order, and viewers send DICOMweb requests by
    # the hundred (matching the REST routes first cost a tenth of a study QIDO's CPU).
    # No REST route's path starts with /dicomweb/, so the order changes no answer.
    dicomweb_router.mount(app, settings.cors_origins)  # /dicomweb/projects/{project}
    for router in API_ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
    for router in PAGE_ROUTERS:
        app.include_router(router)
    if database.user_count() == 0:
        log.warning(NO_USERS_HINT.format(data=settings.data_dir))
    return app
