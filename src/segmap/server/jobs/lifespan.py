"""The FastAPI lifespan that runs the job runner, and the storage sweep, with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from segmap.server.imaging.sweeper import OrphanSweeper
from segmap.server.jobs.runner import JobRunner


@asynccontextmanager
async def job_runner_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the job runner when the app starts; stop it (re-queuing jobs) when it stops.

    The storage sweep (``imaging.sweeper``) runs beside it on the interval of
    ``Settings.orphan_sweep_interval_s`` and stops first.
    """
    settings = app.state.settings
    runner = JobRunner(app.state.database, app.state.storage, settings)
    await run_in_threadpool(runner.start)
    app.state.job_runner = runner
    sweeper = OrphanSweeper(
        app.state.database,
        app.state.storage,
        settings.orphan_sweep_interval_s,
        settings.orphan_min_age_s,
    )
    sweeper.start()
    app.state.orphan_sweeper = sweeper
    try:
        yield
    finally:
        await run_in_threadpool(sweeper.stop)
        await run_in_threadpool(runner.stop)
        app.state.job_runner = None
