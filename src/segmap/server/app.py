"""The application factory: ``create_app(settings)`` builds the whole web service."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import segmap
from segmap.server import api, api_imaging, api_jobs, pages, pages_imaging, pages_jobs
from segmap.server.db.engine import Database
from segmap.server.errors import ServiceError
from segmap.server.jobs import job_runner_lifespan
from segmap.server.sessions import CookieSessionMiddleware
from segmap.server.settings import Settings, load_or_create_secret
from segmap.server.storage import LocalStorage

log = logging.getLogger("segmap.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/"

NO_USERS_HINT = (
    "segmap has no user accounts yet. Create an administrator with:\n"
    "    echo 'a-good-password' | segmap users create admin --admin --data {data}\n"
    "then log in at the service's address."
)


async def _error_response(request: Request, status: int, detail: Any, **extra: Any) -> Response:
    """JSON ``{"detail": ...}`` on the API; a friendly page (or the log-in page) elsewhere."""
    if not request.url.path.startswith(API_PREFIX):
        return pages.html_error(request, status, str(detail))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": detail, **extra}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return await _error_response(request, exc.status_code, exc.message, **exc.extra)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"there is no {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        response = await _error_response(request, exc.status_code, detail)
        for key, value in (exc.headers or {}).items():
            response.headers.setdefault(key, value)
        return response

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if not request.url.path.startswith(API_PREFIX):
            return await _error_response(request, 422, _validation_summary(errors))
        return JSONResponse(jsonable_encoder({"detail": errors}), status_code=422)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def _validation_summary(errors: Any) -> str:
    parts = []
    for e in errors:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg")))
    return "; ".join(parts) or "the request is not valid"


def create_app(settings: Settings) -> FastAPI:
    """Build the service for ``settings``: migrate the database, open storage, mount routes.

    Works on an empty data folder. Logs how to create the first account when none exists.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    storage = LocalStorage(settings.storage_dir)
    storage.sweep_staging()
    secret = load_or_create_secret(settings.data_dir)

    app = FastAPI(
        lifespan=job_runner_lifespan,
        title="segmap",
        version=segmap.__version__,
        description=(
            "Projects, machine-learning models and their file resources, with the region "
            "map (region2MaskValueMap.txt) of each model. Authenticate with "
            "`Authorization: Bearer <token>` from `POST /api/v1/auth/token`."
        ),
    )
    app.state.settings = settings
    app.state.database = database
    app.state.storage = storage
    app.add_middleware(
        CookieSessionMiddleware,
        secret=secret,
        max_age_s=settings.session_max_age_s,
        secure=settings.secure_cookies,
    )
    _install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(api_imaging.router)
    app.include_router(api_jobs.router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(pages_imaging.router)
    app.include_router(pages_jobs.router)
    if database.user_count() == 0:
        log.warning(NO_USERS_HINT.format(data=settings.data_dir))
    return app
