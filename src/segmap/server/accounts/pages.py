"""The log-in and log-out pages, the start page that sends a visitor to one of them, and
(included from ``admin_pages``) the site admin's Users page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.accounts import admin_pages, service
from segmap.server.accounts.api import client_address
from segmap.server.accounts.throttle import TooManyAttempts
from segmap.server.web import auth
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, optional_principal
from segmap.server.web.forms import field
from segmap.server.web.pages import (
    HOME_ROUTE,
    LOGIN_ROUTE,
    page_context,
    redirect,
    render,
    safe_next,
    sentence,
    set_flash,
)
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)
router.include_router(admin_pages.router)


@router.get("/", name="home")
def home(request: Request, principal: Principal | None = Depends(optional_principal)) -> Response:
    """The start page is the project list (or the log-in page)."""
    return redirect(path_for(request, HOME_ROUTE if principal else LOGIN_ROUTE), status_code=302)


@router.get("/login", name=LOGIN_ROUTE)
def login_form(
    request: Request,
    next: str | None = None,  # noqa: A002 - the query parameter's name
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The log-in form (already logged in: straight on)."""
    if principal is not None:
        return redirect(safe_next(request, next), status_code=302)
    context = page_context(
        request, None, nav="login", next_url=safe_next(request, next), username="", error=None
    )
    return render(request, "login.html", context)


@router.post("/login", name="login_submit")
async def login_submit(request: Request, db: Session = Depends(get_db)) -> Response:
    """Check the password, start the session, go where the user was heading."""
    form = await request.form()
    auth.check_csrf(request, field(form, auth.CSRF_FORM_FIELD))
    username = field(form, "username").strip()
    next_url = safe_next(request, field(form, "next"))
    try:
        principal = service.log_in(
            db, username, field(form, "password"), address=client_address(request)
        )
    except TooManyAttempts as exc:
        context = page_context(
            request,
            None,
            nav="login",
            next_url=next_url,
            username=username,
            error=sentence(exc.message),
        )
        response = render(request, "login.html", context, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if principal is None:
        context = page_context(
            request,
            None,
            nav="login",
            next_url=next_url,
            username=username,
            error="Wrong username or password.",
        )
        return render(request, "login.html", context, status_code=401)
    auth.login(request, principal)
    return redirect(next_url)


@router.post("/logout", name="logout_submit")
async def logout_submit(request: Request) -> Response:
    """End the browser session."""
    form = await request.form()
    auth.check_csrf(request, field(form, auth.CSRF_FORM_FIELD))
    auth.logout(request)
    set_flash(request, "info", "You have logged out.")
    return redirect(path_for(request, LOGIN_ROUTE))
