"""Running conversion jobs: the dispatcher (``runner``) and the worker side (``task``).

:func:`job_runner_lifespan` is the FastAPI lifespan that starts a :class:`JobRunner` with
the app and stops it with the app; the runner is at ``app.state.job_runner``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from segmap.server.jobs.runner import JobRunner

__all__ = ["JobRunner", "job_runner_lifespan"]


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
