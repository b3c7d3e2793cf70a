"""How refusals reach the caller: JSON ``{"detail": ...}`` on the API, a page elsewhere.

Services raise ``segmap.server.errors.ServiceError`` subclasses; FastAPI raises its own
for unknown paths, wrong methods and invalid request bodies. :func:`install` turns all of
them into a 4xx answer with a sentence: under ``/api/`` a JSON body (401 with
``WWW-Authenticate: Bearer``), on pages the friendly error page, or the log-in page for
401.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from segmap.server.errors import ServiceError
from segmap.server.web import auth
from segmap.server.web.deps import optional_principal
from segmap.server.web.pages import error_page, login_redirect

API_PREFIX = "/api/"


def html_error(request: Request, status_code: int, detail: str) -> Response:
    """401: off to the log-in page; anything else: the friendly error page."""
    if status_code == 401:
        return login_redirect(request)
    try:
        principal = optional_principal(request)
    except ServiceError:
        principal = None
    context: dict[str, Any] = {"user": principal}
    if principal is not None and "session" in request.scope:
        context["csrf_token"] = auth.csrf_token(request)
    return error_page(request, status_code, detail, context)


async def error_response(request: Request, status: int, detail: Any, **extra: Any) -> Response:
    """JSON ``{"detail": ...}`` on the API; a friendly page (or the log-in page) elsewhere."""
    if not request.url.path.startswith(API_PREFIX):
        return html_error(request, status, str(detail))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": detail, **extra}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers of service errors, HTTP errors and invalid requests."""

    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return await error_response(request, exc.status_code, exc.message, **exc.extra)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"there is no {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        response = await error_response(request, exc.status_code, detail)
        for key, value in (exc.headers or {}).items():
            response.headers.setdefault(key, value)
        return response

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if not request.url.path.startswith(API_PREFIX):
            return await error_response(request, 422, validation_summary(errors))
        return JSONResponse({"detail": validation_problems(errors)}, status_code=422)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def validation_problems(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors with only each field's location and message.

    FastAPI's own answer also echoes the value it refused (``input``, and ``ctx`` built
    from it): a wrong-typed password would come back in the body, and into any log or
    proxy that keeps bodies. The location and the message say what to fix.
    """
    problems = []
    for e in errors:
        loc = [x if isinstance(x, int) else str(x) for x in e.get("loc", ())]
        problems.append({"loc": loc, "msg": str(e.get("msg", "invalid"))})
    return problems


def validation_summary(errors: Any) -> str:
    """FastAPI's validation errors as one sentence for a page."""
    parts = []
    for e in errors:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg")))
    return "; ".join(parts) or "the request is not valid"
