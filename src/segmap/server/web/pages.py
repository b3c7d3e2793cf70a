"""What every page shares: templates, static files, flash messages, friendly error pages.

The pages are server-rendered Jinja2 with a little plain JavaScript; the stylesheet and
scripts are served from the package (the service runs offline: no CDN, no build step).
Templates get ``path_for(name, **params)`` (see :mod:`segmap.server.web.urls`) for links,
``static_url(name)`` for files of ``static/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

import segmap
from segmap.server.web import auth
from segmap.server.web.auth import Principal
from segmap.server.web.urls import path_for, with_query

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
STATIC_PATH = "/static"  # where the app factory mounts STATIC_DIR
STATIC_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

FLASH_KEY = "flash"
# Route names of the log-in page and of where a user goes by default (accounts, registry).
LOGIN_ROUTE = "login_form"
HOME_ROUTE = "projects_page"

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
    env.env.globals["path_for"] = _template_path_for
    env.env.globals["version"] = getattr(segmap, "__version__", "")
    env.env.filters["sentence"] = sentence
    return env


@pass_context
def _template_path_for(context: Context, name: str, **params: Any) -> str:
    query = params.pop("query", None)
    return with_query(path_for(context["request"], name, **params), query)


def sentence(text: str) -> str:
    """A service message as a sentence on a page: capital first letter, final full stop."""
    text = str(text).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?:" else text + "."


@cache
def _static_digest(name: str) -> str:
    # A content hash in the URL lets browsers cache the files for long without ever
    # running an old script against a new page.
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """URL of a file in ``static/``, versioned by its content."""
    return f"{STATIC_PATH}/{quote(name)}?v={_static_digest(name)}"


def colour_hex(rgba: tuple[int, int, int, int]) -> str:
    """``#rrggbb`` of an RGBA colour (alpha dropped: swatches are opaque)."""
    r, g, b, _a = rgba
    return f"#{r:02x}{g:02x}{b:02x}"


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
    if request.method not in ("GET", "HEAD"):
        # A form posted after the session ended cannot be replayed by a GET: start over.
        return redirect(path_for(request, LOGIN_ROUTE))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(with_query(path_for(request, LOGIN_ROUTE), {"next": target}))


def safe_next(request: Request, url: str | None) -> str:
    """Only local paths are followed after log-in (no open redirect to another site)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return path_for(request, HOME_ROUTE)
    return url


def page_context(request: Request, user: Principal | None, **values: Any) -> dict[str, Any]:
    """What every page template expects (user box, nav, flash messages, CSRF token),
    updated with ``values``."""
    context: dict[str, Any] = {
        "user": user,
        "csrf_token": auth.csrf_token(request),
        "flashes": pop_flashes(request),
        "nav": "projects",
        "breadcrumbs": [],
    }
    context.update(values)
    return context


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
        "breadcrumbs": [],
        "flashes": [],
    }
    values.update(context or {})
    values.update({"status_code": status_code, "heading": heading, "message": message})
    return render(request, "error.html", values, status_code=status_code)
