"""The FastAPI lifespan that runs the job runner with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from segmap.server.jobs.runner import JobRunner


@asynccontextmanager
async def job_runner_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the job runner when the app starts; stop it (re-queuing jobs) when it stops."""
    runner = JobRunner(app.state.database, app.state.storage, app.state.settings)
    await run_in_threadpool(runner.start)
    app.state.job_runner = runner
    try:
        yield
    finally:
        await run_in_threadpool(runner.stop)
        app.state.job_runner = None
