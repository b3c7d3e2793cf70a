"""FastAPI dependencies shared by the API and the pages.

- ``get_db``: a session per request; on SQLite, non-GET requests take the write lock at
  their first statement so read-then-write never fails with "database is locked".
- ``optional_principal`` / ``require_principal``: the caller from a bearer token or the
  log-in session the cookie names (pages use these; they do not check CSRF — pages call
  ``auth.check_csrf`` with the form field).
- ``api_principal``: like ``require_principal``, and additionally demands the
  ``X-CSRF-Token`` header on cookie-authenticated API calls that change things.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from segmap.server.db.engine import Database
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage
from segmap.server.web import auth
from segmap.server.web.auth import Principal


def get_database(request: Request) -> Database:
    """The app's ``Database``."""
    database: Database = request.app.state.database
    return database


def get_settings(request: Request) -> Settings:
    """The app's ``Settings``."""
    settings: Settings = request.app.state.settings
    return settings


def get_storage(request: Request) -> LocalStorage:
    """The app's file storage."""
    storage: LocalStorage = request.app.state.storage
    return storage


def get_db(request: Request) -> Iterator[Session]:
    """A database session for this request, closed afterwards."""
    database = get_database(request)
    with database.session(write=request.method not in auth.SAFE_METHODS) as db:
        yield db


def lookup_principal(request: Request) -> Principal | None:
    """The caller, looked up in a short read-only session of its own.

    Its own session keeps the lookup out of the request's write transaction, and lets
    async endpoints (uploads) use it without holding a session while bytes stream. The
    answer is remembered for the rest of the request (an error page asks again).
    """
    found, principal = auth.cached_principal(request)
    if found:
        return principal
    database = get_database(request)
    with database.session() as db:
        principal = auth.principal_from_request(request, db, get_settings(request).token_max_age_s)
    auth.remember_principal(request, principal)
    return principal


def optional_principal(request: Request) -> Principal | None:
    """The caller, or None when nobody is logged in (a bad bearer token is still 401)."""
    return lookup_principal(request)


def require_principal(
    principal: Principal | None = Depends(optional_principal),
) -> Principal:
    """The caller; 401 when nobody is logged in."""
    return auth.require_principal(principal)


def api_principal(request: Request) -> Principal | None:
    """The caller for API routes (None if anonymous), with the CSRF header checked.

    Anonymous callers get None so each endpoint's service raises the 401 with its reason.
    """
    principal = lookup_principal(request)
    auth.check_api_csrf(request, principal)
    return principal
