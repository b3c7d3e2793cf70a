"""How refusals reach the caller: JSON ``{"detail": ...}`` on the API, a page elsewhere.

Services raise ``segmap.server.errors.ServiceError`` subclasses; FastAPI raises its own
for unknown paths, wrong methods and invalid request bodies. :func:`install` turns all of
them into a 4xx answer with a sentence: under ``/api/`` a JSON body (401 with
``WWW-Authenticate: Bearer``), on pages the friendly error page, or the log-in page for
401.

Anything else is a fault of segmap, not of the request: :class:`ErrorBoundary` (the
outermost middleware) logs it once with its traceback and a request id and answers 500
``{"detail": ..., "request_id": ...}`` (the error page for browsers); every response
carries the id in ``X-Request-ID``.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segmap.server.errors import ServiceError
from segmap.server.web import auth
from segmap.server.web.deps import optional_principal
from segmap.server.web.pages import error_page, login_redirect

API_PREFIX = "/api/"
# Roots whose clients are programs: their refusals are JSON, never a page.
JSON_PREFIXES = (API_PREFIX, "/dicomweb/")
log = logging.getLogger("segmap.server")


def answers_json(request: Request) -> bool:
    """Whether a refusal of this request is JSON (API and DICOMweb roots) or a page."""
    return request.url.path.startswith(JSON_PREFIXES)


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
    if not answers_json(request):
        return html_error(request, status, str(detail))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": detail, **extra}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers of service errors, HTTP errors and invalid requests."""

    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        response = await error_response(request, exc.status_code, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        if exc.status_code == 404 and detail == "Not Found" and answers_json(request):
            detail = f"there is no {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 404 and detail == "Not Found":
            # A person followed a link or typed an address: no API pointer on a page.
            detail = f"there is no page at {request.url.path}"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        response = await error_response(request, exc.status_code, detail)
        for key, value in (exc.headers or {}).items():
            response.headers.setdefault(key, value)
        return response

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if not answers_json(request):
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


# --- the 500 boundary and request ids ------------------------------------------------

REQUEST_ID_HEADER = "X-Request-ID"
# A request id sent by a proxy in front of segmap is kept, so its logs and segmap's
# agree; anything else (too long, spaces, line breaks that would forge log lines) is
# replaced by a fresh one.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
UNEXPECTED = (
    "something went wrong on the server; it is logged with request id {request_id}: "
    "try again, and if it happens again give this id to the service's administrator"
)


def request_id_of(scope: Scope) -> str:
    """The request id of this request (set by :class:`ErrorBoundary`), or ``""``."""
    state = scope.get("state") or {}
    return str(state.get("request_id", ""))


def _new_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


def unexpected_error_response(request: Request, request_id: str) -> Response:
    """The answer to an error no handler knew: JSON 500 on the API, the error page elsewhere.

    Nothing of the exception is shown (it may hold paths, SQL or data); the request id
    finds its traceback in the log.
    """
    detail = UNEXPECTED.format(request_id=request_id)
    if answers_json(request):
        return JSONResponse({"detail": detail, "request_id": request_id}, status_code=500)
    try:
        return html_error(request, 500, detail)
    except Exception:  # the page needs the database and templates; either may be the fault
        log.exception("the error page failed too (request id %s)", request_id)
        return PlainTextResponse(detail, status_code=500)


class ErrorBoundary:
    """The outermost middleware: every HTTP response carries ``X-Request-ID``, and any
    exception no handler turned into an answer becomes :func:`unexpected_error_response`.

    The exception is logged once, with its traceback, the method, path and request id,
    and not raised further (the server would log it a second time). A client that went
    away mid-request is logged in one line without a traceback. When the answer had
    already begun (a download failing half-way) nothing more can be sent: the error is
    logged and the connection ends.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _new_request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            log.info(
                "client went away during %s %s (request id %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
        except Exception:
            log.exception(
                "unexpected error in %s %s (request id %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if not started:
                response = unexpected_error_response(Request(scope), request_id)
                await response(scope, receive, send_with_id)
