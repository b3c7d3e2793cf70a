"""The API's documentation page, ``/docs``, served entirely by segmap (works offline).

FastAPI's own ``/docs`` loads Swagger UI from a CDN, so on a network without the internet
the page stays blank. Here the same page (FastAPI's ``get_swagger_ui_html``) loads
Swagger UI's script, stylesheet and icon from the ``fastapi-swagger`` package's files,
mounted under ``/docs/assets``. That package ships Swagger UI 5, which reads the
OpenAPI 3.1 documents FastAPI writes (Swagger UI 4, as in ``swagger-ui-bundle``, refuses
them). ReDoc is not offered: no package ships its bundle.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
# The route name FastAPI gives its own /docs; the pages link to it by this name.
DOCS_ROUTE = "swagger_ui_html"
ASSETS_ROUTE = "api_docs_assets"


def swagger_ui_dir() -> Path:
    """The folder holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and the icon."""
    return Path(str(resources.files("fastapi_swagger") / "resources"))


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (create the app with ``docs_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_dir()), name=ASSETS_ROUTE)

    async def swagger_ui_html(request: Request) -> HTMLResponse:
        """Swagger UI on this service's OpenAPI document, every file from this service."""

        def asset(name: str) -> str:
            return str(request.app.url_path_for(ASSETS_ROUTE, path=name))

        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · REST API",
            swagger_js_url=asset("swagger-ui-bundle.js"),
            swagger_css_url=asset("swagger-ui.css"),
            swagger_favicon_url=asset("favicon-32x32.png"),
        )

    app.add_route(DOCS_PATH, swagger_ui_html, include_in_schema=False, name=DOCS_ROUTE)
