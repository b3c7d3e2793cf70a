"""What every page shares: templates, static files, flash messages, friendly error pages.

The pages are server-rendered Jinja2 with a little plain JavaScript; the stylesheet and
scripts are served from the package (the service runs offline: no CDN, no build step).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

import segmap

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
STATIC_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

FLASH_KEY = "flash"
LOGIN_PATH = "/login"

ERROR_HEADINGS = {
    400: "That request could not be understood",
    403: "You do not have access to this",
    404: "Not found",
    409: "That clashes with what is already there",
    413: "That file is too large",
    422: "That could not be accepted",
}


@dataclass(frozen=True)
class Crumb:
    """One step of the breadcrumb trail; the last one is the current page."""

    label: str
    url: str | None = None


@dataclass(frozen=True)
class Flash:
    """A one-time message shown on the next page (level: success, info, warning, error)."""

    level: str
    message: str


@cache
def templates() -> Jinja2Templates:
    """The Jinja2 environment of the pages (autoescaping on, as for every .html)."""
    env = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env.env.globals["static_url"] = static_url
    env.env.globals["version"] = getattr(segmap, "__version__", "")
    return env


@cache
def _static_digest(name: str) -> str:
    # A content hash in the URL lets browsers cache the files for long without ever
    # running an old script against a new page.
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """URL of a file in ``static/``, versioned by its content."""
    return f"/static/{quote(name)}?v={_static_digest(name)}"


def static_response(name: str) -> Response:
    """Serve one file of ``static/`` (flat folder; anything else is 404)."""
    path = STATIC_DIR / name
    media = STATIC_TYPES.get(path.suffix)
    if "/" in name or "\\" in name or name.startswith(".") or media is None or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no static file named {name!r}")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=86400"})


def colour_of(value: int) -> str:
    """A stable swatch colour for a mask value, as ``#rrggbb``.

    Hue steps by the golden angle so neighbouring values look different; the editor's
    JavaScript (``static/region_editor.js``) uses the same rule as a CSS ``hsl()``.
    """
    hue = (value * 137.50776405) % 360.0
    r, g, b = colorsys.hls_to_rgb(hue / 360.0, 0.52, 0.62)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def format_time(moment: datetime | None) -> str:
    """``2025-01-31 14:05 UTC`` (the service keeps every time in UTC)."""
    if moment is None:
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_spacing(spacing: Sequence[float]) -> str:
    """Voxel spacing in mm as ``x × y × z mm``."""
    return " × ".join(f"{s:g}" for s in spacing) + " mm"


# ---- flash messages: kept in the signed session until the next page shows them ----


def set_flash(request: Request, level: str, message: str) -> None:
    """Queue a one-time message for the next page this browser shows."""
    pending = request.session.get(FLASH_KEY)
    queue = list(pending) if isinstance(pending, list) else []
    queue.append([level, message])
    request.session[FLASH_KEY] = queue


def pop_flashes(request: Request) -> list[Flash]:
    """The queued messages, removed from the session."""
    if "session" not in request.scope:
        return []
    pending = request.session.pop(FLASH_KEY, None)
    if not isinstance(pending, list):
        return []
    return [Flash(str(item[0]), str(item[1])) for item in pending if len(item) == 2]


def redirect(url: str, status_code: int = 303) -> RedirectResponse:
    """A redirect after a form post (303 so the browser follows with GET)."""
    return RedirectResponse(url, status_code=status_code)


def login_redirect(request: Request) -> RedirectResponse:
    """Send an anonymous visitor to the log-in page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"{LOGIN_PATH}?next={quote(target, safe='')}")


def safe_next(url: str | None) -> str:
    """Only local paths are followed after log-in (no open redirect to another site)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/projects"
    return url


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """Render a template with the request in its context."""
    return templates().TemplateResponse(request, name, dict(context), status_code=status_code)


def error_page(
    request: Request, status_code: int, message: str, context: Mapping[str, Any] | None = None
) -> HTMLResponse:
    """The friendly error page (403, 404, ...) with the reason the service gave."""
    heading = ERROR_HEADINGS.get(status_code, "Something went wrong")
    values: dict[str, Any] = {
        "user": None,
        "csrf_token": "",
        "nav": "",
        "extra_nav": [],
        "breadcrumbs": [],
        "flashes": [],
    }
    values.update(context or {})
    values.update({"status_code": status_code, "heading": heading, "message": message})
    return render(request, "error.html", values, status_code=status_code)


def _reason(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    return json.dumps(detail)


class PageRoute(APIRoute):
    """A route whose failures are pages for people, not JSON.

    401 becomes a redirect to the log-in page; any other refusal (from the services or
    from FastAPI's own validation) becomes the friendly error page with the reason.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            from segmap.server.errors import ServiceError

            try:
                return await inner(request)
            except ServiceError as exc:
                if exc.status_code == 401:
                    return login_redirect(request)
                return error_page(request, exc.status_code, exc.message, _page_user(request))
            except HTTPException as exc:
                if exc.status_code == 401:
                    return login_redirect(request)
                return error_page(
                    request, exc.status_code, _reason(exc.detail), _page_user(request)
                )
            except RequestValidationError:
                return error_page(
                    request, 404, "That address does not name a page here.", _page_user(request)
                )

        return handler


def _page_user(request: Request) -> dict[str, Any]:
    # The error page still shows who is logged in when the page that failed knew it.
    user = getattr(request.state, "page_user", None)
    token = getattr(request.state, "page_csrf", "")
    return {"user": user, "csrf_token": token}
