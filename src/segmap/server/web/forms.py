"""Posted page forms: the caller, the CSRF check, fields, and re-showing a refused form."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from segmap.server.errors import ServiceError
from segmap.server.web import auth
from segmap.server.web.auth import Principal


def logged_in(principal: Principal | None) -> Principal:
    """The caller; the service's own 401 otherwise, which sends a browser to log in."""
    return auth.require_principal(principal)


def field(form: Any, name: str) -> str:
    """A text field of a posted form ('' when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def posted_form(request: Request, principal: Principal | None) -> tuple[Principal, Any]:
    """The logged-in user and the posted form, once its CSRF token checks out."""
    who = logged_in(principal)
    form = await request.form()
    auth.check_csrf(request, field(form, auth.CSRF_FORM_FIELD))
    return who, form


def take_back(db: Session, exc: ServiceError, also_404: bool = False) -> None:
    """A form the service refused: re-raise what the error page shows (401, 403, and
    404 when the page itself is gone), else roll back so the form can be shown again."""
    if exc.status_code in (401, 403) or (also_404 and exc.status_code == 404):
        raise exc
    db.rollback()
