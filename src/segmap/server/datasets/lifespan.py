"""The FastAPI lifespan that runs the dataset worker with the app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from segmap.server.datasets.conversions import SourcePaths
from segmap.server.datasets.worker import CASE_DELAY_ENV, DatasetWorker


def source_paths(app: FastAPI) -> SourcePaths:
    """API paths of derived files and scans, from the app's routes."""

    def path(route: str, /, **params: str | int) -> str:
        return str(
            app.url_path_for(route, **{k: quote(str(v), safe="") for k, v in params.items()})
        )

    return SourcePaths(
        derived=lambda project, session, scan, folder, file: path(
            "api_download_derived",
            project=project,
            session=session,
            scan=scan,
            folder=folder,
            name=file,
        ),
        scan=lambda project, session, scan: path(
            "api_get_scan", project=project, session=session, scan=scan
        ),
    )


@asynccontextmanager
async def dataset_worker_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the dataset worker when the app starts; stop it (re-queuing) when it stops."""
    worker = DatasetWorker(
        app.state.database,
        app.state.storage,
        app.state.settings,
        source_paths(app),
        case_delay_s=float(os.environ.get(CASE_DELAY_ENV) or 0.0),
    )
    await run_in_threadpool(worker.start)
    app.state.dataset_worker = worker
    try:
        yield
    finally:
        await run_in_threadpool(worker.stop)
        app.state.dataset_worker = None
