"""Mounting the DICOMweb roots on the app: routers, Basic-auth cache, CORS, JSON 404s.

Also XNAT's ROI collection PUT (:mod:`.routes_xnat`), which shares the principals.

``/dicomweb/projects/{project}`` answers QIDO-RS (:mod:`.routes_qido`), WADO-RS
(:mod:`.routes_wado`, :mod:`.routes_frames`) and STOW-RS (:mod:`.routes_stow`). Any
other path under ``/dicomweb/`` is a JSON 404, as DICOMweb clients expect JSON.

CORS is off unless ``Settings.cors_origins`` names origins (``SEGMAP_CORS_ORIGINS``);
then only the DICOMweb paths answer cross-origin requests from those origins, with
bearer tokens or Basic credentials in ``Authorization`` (cookies are not sent
cross-origin: ``allow_credentials`` stays off).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from segmap.server.dicomweb import (
    routes_frames,
    routes_qido,
    routes_stow,
    routes_wado,
    routes_xnat,
)
from segmap.server.dicomweb.auth import BasicCache
from segmap.server.dicomweb.responses import refusal

ROOT = "/dicomweb/"

_fallback = APIRouter()


@_fallback.api_route(
    "/dicomweb/{rest:path}",
    methods=["GET", "POST", "PUT", "DELETE"],
    include_in_schema=False,
    name="dicomweb_not_found",
)
def not_found(request: Request, rest: str) -> Response:
    """A JSON 404 for any other path under /dicomweb/."""
    return refusal(
        404,
        f"there is no {request.method} {request.url.path}; DICOMweb roots are "
        "/dicomweb/projects/{project} (see docs/dicomweb.md)",
    )


class DicomwebCors:
    """CORS for the DICOMweb paths only; the rest of the site stays same-origin."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=["Authorization", "Accept", "Content-Type"],
            expose_headers=["Warning", "Content-Location", "Content-Length"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(ROOT):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def mount(app: FastAPI, cors_origins: Sequence[str] = ()) -> None:
    """Add the DICOMweb routes (and CORS for ``cors_origins``) to ``app``."""
    app.state.dicomweb_basic_cache = BasicCache()
    for router in (
        routes_qido.router,
        routes_wado.router,
        routes_frames.router,
        routes_stow.router,
    ):
        app.include_router(router)
    app.include_router(routes_xnat.router)  # XNAT's ROI collection PUT, Basic auth
    app.include_router(_fallback)
    if cors_origins:
        app.add_middleware(DicomwebCors, origins=tuple(cors_origins))
