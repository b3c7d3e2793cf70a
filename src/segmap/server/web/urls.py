"""URLs of pages and API routes, built from the routes themselves.

Every route has a name (``name=`` on its decorator); code and templates ask for a path by
that name and its parameters, so a path is written once, in its route. Starlette's
``url_path_for`` inserts parameters as given, so each one is percent-encoded here first
(``Annotator 1`` -> ``Annotator%201``, ``a/b`` -> ``a%2Fb``), as browsers and the API
expect. Paths are relative to the site (``/projects/P``), like the links the pages use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

_PARAM = re.compile(r"\{(\w+)(:\w+)?\}")


def path_for(conn: HTTPConnection, name: str, /, **params: str | int) -> str:
    """The path of route ``name`` with ``params`` percent-encoded."""
    encoded = {key: quote(str(value), safe="") for key, value in params.items()}
    return str(conn.app.url_path_for(name, **encoded))


def with_query(path: str, query: dict[str, Any] | None) -> str:
    """``path`` with a query string of ``query`` (None values left out)."""
    kept = {k: v for k, v in (query or {}).items() if v is not None}
    return f"{path}?{urlencode(kept, quote_via=quote)}" if kept else path


def path_pattern(conn: HTTPConnection, name: str, /, **params: str | int) -> str:
    """Route ``name``'s path with ``params`` filled in and the rest left as ``{param}``.

    For messages that show how to call an endpoint (``.../collections/{label}``).
    """
    route = _route(conn, name)
    path: str = getattr(route, "path", "")

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return quote(str(params[key]), safe="") if key in params else "{" + key + "}"

    return _PARAM.sub(fill, path)


def _route(conn: HTTPConnection, name: str) -> BaseRoute:
    found = _find_route(conn.app.router.routes, name)
    if found is None:
        raise KeyError(f"no route is named {name!r}")
    return found


def _find_route(routes: Iterable[BaseRoute], name: str) -> BaseRoute | None:
    for route in routes:
        if getattr(route, "name", None) == name:
            return route
        # FastAPI keeps an included router whole (``original_router``); look inside.
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is not None and (found := _find_route(inner, name)) is not None:
            return found
    return None
