"""How DICOMweb routes answer: JSON refusals, DICOM JSON bodies, the project's root URL.

Every refusal under ``/dicomweb/`` is JSON ``{"detail": …}`` with its status, whoever
raised it: the building blocks' :class:`~.errors.DicomwebError` or a service's
``ServiceError`` (the rest of the site answers pages, not JSON, outside ``/api/``).
:class:`DicomwebRoute` does that for every route of the DICOMweb routers. A 401 carries
``WWW-Authenticate`` offering Basic and Bearer.

:class:`DirectRoute` is a DicomwebRoute for the frequent small reads (QIDO): its
endpoint is called with the request and its path parameters, without FastAPI's
dependency solving.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from segmap.server.dicomweb.auth import CHALLENGE
from segmap.server.dicomweb.errors import DicomwebError
from segmap.server.errors import ServiceError
from segmap.server.web.path_check import refuse_unnameable_references

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

DICOM_JSON = "application/dicom+json"
PREFIX = "/dicomweb/projects/{project}"


def refusal(status: int, detail: str, **extra: Any) -> JSONResponse:
    """A JSON refusal; 401 says how to authenticate."""
    headers = {"WWW-Authenticate": CHALLENGE} if status == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


async def answer_or_refuse(
    request: Request, handler: Callable[[Request], Awaitable[Response]]
) -> Response:
    """``handler``'s answer, or the JSON refusal of the error it raised."""
    try:
        return await handler(request)
    except DicomwebError as exc:
        return refusal(exc.status, exc.message)
    except ServiceError as exc:
        answer = refusal(exc.status_code, exc.message, **exc.extra)
        answer.headers.update(exc.headers)
        return answer


class DicomwebRoute(APIRoute):
    """A route whose refusals are JSON whatever raised them (see the module doc)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await answer_or_refuse(request, handler)

        return route


class DirectRoute(DicomwebRoute):
    """A DICOMweb route whose endpoint is awaited as ``endpoint(request, **path_params)``.

    FastAPI's dependency solving (parameters validated one by one, dependencies in a
    cache, an exit stack) was a fifth of a study QIDO's CPU, for an endpoint that needs
    only the request and its path parameters as text. So this route calls the endpoint
    itself, after the app's path check (:func:`refuse_unnameable_references`, the one
    dependency the app gives every route: ``tests/test_dicomweb_qido.py`` fails if the
    app gains another). Its endpoint must be ``async``, take ``request`` and the path's
    parameters as ``str`` and nothing else, and return a Response; checked when the
    route is made. It stays in the OpenAPI document like any route.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._check_endpoint()

    def _check_endpoint(self) -> None:
        dependant = self.dependant
        extra = (
            [f.name for f in dependant.query_params + dependant.header_params]
            + [f.name for f in dependant.cookie_params + dependant.body_params]
            + [d.name or "a dependency" for d in dependant.dependencies]
        )
        not_text = [f.name for f in dependant.path_params if f.field_info.annotation is not str]
        if dependant.request_param_name != "request" or extra or not_text:
            raise TypeError(
                f"{self.endpoint.__name__} cannot be a DirectRoute: it must take `request` "
                "and str path parameters only "
                f"(has {', '.join(extra + not_text) or 'no request parameter'})"
            )

    def get_route_handler(self) -> Handler:
        endpoint = self.endpoint

        async def call(request: Request) -> Response:
            await refuse_unnameable_references(request)
            answer: Response = await endpoint(request, **request.path_params)
            return answer

        async def route(request: Request) -> Response:
            return await answer_or_refuse(request, call)

        return route


def project_root(request: Request, project: str) -> str:
    """The absolute URL of the project's DICOMweb root (no trailing slash).

    Built from the request's ``Host``, as RFC 9110 says. One repair: dicomweb-client
    sends ``Host`` without the port; when that host is the very address the connection
    was made to (so no proxy stands between), the port it connected to is added —
    otherwise every RetrieveURL and Bulk Data URI it is given would point at port 80.
    """
    base = str(request.base_url).rstrip("/")
    host = request.headers.get("host", "")
    server = request.scope.get("server")
    if host and server and host == server[0] and ":" not in host:
        default = 443 if request.url.scheme == "https" else 80
        if server[1] not in (None, default):
            base = base.replace(f"://{host}", f"://{host}:{server[1]}", 1)
    return f"{base}/dicomweb/projects/{quote(project, safe='')}"


def dicom_json(body: Any, *, warning: str | None = None, status: int = 200) -> Response:
    """A DICOM JSON answer (``application/dicom+json``), with a ``Warning`` if given."""
    headers = {"Warning": warning} if warning else None
    text = json.dumps(body, separators=(",", ":"))
    return Response(text, status_code=status, media_type=DICOM_JSON, headers=headers)


def dicom_json_stream(chunks: Iterable[str]) -> StreamingResponse:
    """A DICOM JSON answer sent as it is produced."""
    return StreamingResponse((c.encode("utf-8") for c in chunks), media_type=DICOM_JSON)
