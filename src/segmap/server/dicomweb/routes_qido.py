"""QIDO-RS routes (PS3.18 §10.6) of a project's DICOMweb root: search at every level.

Each answers ``application/dicom+json``: a list of results (empty when nothing
matches), a 400 naming the query key that is wrong, a ``Warning`` header naming keys
that were ignored. Every role of the project may search; see :mod:`.auth`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from segmap.server.db.engine import Database
from segmap.server.dicomweb import auth
from segmap.server.dicomweb import search as searches
from segmap.server.dicomweb.auth import reading
from segmap.server.dicomweb.levels import Level
from segmap.server.dicomweb.query import parse_query
from segmap.server.dicomweb.responses import PREFIX, DirectRoute, dicom_json, project_root
from segmap.server.dicomweb.search import Scope, search


@asynccontextmanager
async def _prepared(app: Any) -> AsyncIterator[None]:
    """At start-up (FastAPI runs an included router's lifespan with the app's), compile
    the statements of the caller check and of the usual searches: else the first search
    after a restart pays ~15 ms for it. Run on the executor searches use, which so
    starts its first thread too."""
    database: Database | None = getattr(app.state, "database", None)
    if database is not None:
        await asyncio.get_running_loop().run_in_executor(None, _prepare, database)
    yield


def _prepare(database: Database) -> None:
    with database.engine.connect() as connection:
        auth.prepare(connection)
        searches.prepare(connection)


# DirectRoute: searches are frequent and small, FastAPI's dependency solving a fifth of one.
router = APIRouter(prefix=PREFIX, route_class=DirectRoute, tags=["DICOMweb"], lifespan=_prepared)


async def _answer(request: Request, project: str, level: Level, scope: Scope) -> Response:
    # The search runs in a worker thread (it blocks on the database), in one hop from
    # the event loop to the loop's own executor: Starlette's run_in_threadpool goes
    # through anyio (a capacity limiter and an extra turn of the loop), which cost about
    # 0.35 ms of a 4.5 ms study QIDO here, a search being small and frequent.
    run = contextvars.copy_context().run
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, run, _search, request, project, level, scope)


def _search(request: Request, project: str, level: Level, scope: Scope) -> Response:
    """The whole request in one read transaction (see :func:`.auth.reading`)."""
    with reading(request, project) as (connection, reader):
        query = parse_query(request.query_params.multi_items(), level)
        root = project_root(request, reader.project_id)
        results = search(connection, reader.project_id, query, scope, root)
    return dicom_json(results, warning=query.warning())


@router.get("/studies", name="dicomweb_search_studies")
async def search_studies(
    request: Request,
    project: str,
) -> Response:
    """QIDO-RS: the project's studies matching the query."""
    return await _answer(request, project, Level.STUDY, Scope())


@router.get("/series", name="dicomweb_search_series")
async def search_series(
    request: Request,
    project: str,
) -> Response:
    """QIDO-RS: the project's series matching the query (study attributes too)."""
    return await _answer(request, project, Level.SERIES, Scope())


@router.get("/studies/{study}/series", name="dicomweb_search_study_series")
async def search_study_series(
    request: Request,
    project: str,
    study: str,
) -> Response:
    """QIDO-RS: the series of one study matching the query."""
    return await _answer(request, project, Level.SERIES, Scope(study))


@router.get("/instances", name="dicomweb_search_instances")
async def search_instances(
    request: Request,
    project: str,
) -> Response:
    """QIDO-RS: the project's instances matching the query (study and series too)."""
    return await _answer(request, project, Level.INSTANCE, Scope())


@router.get("/studies/{study}/instances", name="dicomweb_search_study_instances")
async def search_study_instances(
    request: Request,
    project: str,
    study: str,
) -> Response:
    """QIDO-RS: the instances of one study matching the query."""
    return await _answer(request, project, Level.INSTANCE, Scope(study))


@router.get("/studies/{study}/series/{series}/instances", name="dicomweb_search_series_instances")
async def search_series_instances(
    request: Request,
    project: str,
    study: str,
    series: str,
) -> Response:
    """QIDO-RS: the instances of one series matching the query."""
    return await _answer(request, project, Level.INSTANCE, Scope(study, series))
