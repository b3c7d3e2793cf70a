"""The site admin's Users page: every account, and disable, enable, delete.

Paths::

    /admin/users                     the list (site admins only; others get 403)
    /admin/users/disable|enable|delete   forms posting ``username`` (CSRF-checked)

The rules (who may, what deleting keeps) are ``accounts.admin``'s; this module only
shows them and turns refusals into a message on the page.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.accounts import admin
from segmap.server.accounts.service import require_admin
from segmap.server.errors import ServiceError
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, optional_principal
from segmap.server.web.forms import field, logged_in, posted_form
from segmap.server.web.pages import Crumb, page_context, redirect, render, sentence, set_flash
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)

USERS_ROUTE = "admin_users_page"


@router.get("/admin/users", name=USERS_ROUTE)
def users_page(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Every account with its state, live log-ins and API tokens (site admins only)."""
    who = logged_in(principal)
    require_admin(who, "see the list of accounts")
    context = page_context(
        request,
        who,
        nav="admin",
        accounts=admin.list_accounts(db, who),
        breadcrumbs=[Crumb("Users")],
    )
    return render(request, "admin_users.html", context)


async def _act(
    request: Request,
    db: Session,
    principal: Principal | None,
    act: Callable[[Session, Principal, str], object],
    done: str,
) -> Response:
    who, form = await posted_form(request, principal)
    require_admin(who, "manage accounts")
    username = field(form, "username").strip()
    try:
        act(db, who, username)
    except ServiceError as exc:
        if exc.status_code == 401:
            raise
        # Refusals (your own account, the only owner, no such user) are shown on the list.
        db.rollback()
        set_flash(request, "error", sentence(exc.message))
    else:
        set_flash(request, "success", done.format(username=username))
    return redirect(path_for(request, USERS_ROUTE))


@router.post("/admin/users/disable", name="admin_disable_user")
async def disable_user(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Disable the posted account: its log-ins and API tokens stop working now."""
    return await _act(
        request,
        db,
        principal,
        admin.disable_user,
        "{username} is disabled; their log-ins and API tokens no longer work.",
    )


@router.post("/admin/users/enable", name="admin_enable_user")
async def enable_user(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Let the posted account log in again."""
    return await _act(request, db, principal, admin.enable_user, "{username} can log in again.")


@router.post("/admin/users/delete", name="admin_delete_user")
async def delete_user(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Delete the posted account (refused while it alone owns a project)."""
    return await _act(
        request,
        db,
        principal,
        admin.delete_user,
        "{username} is deleted; what they made stays, their memberships are gone.",
    )
