"""The auth API under ``/api/v1``: tokens for a password, revoking them, who am I, and
changing one's password."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from segmap.server.accounts import service
from segmap.server.accounts.schemas import MeOut, PasswordChangeIn, TokenOut, TokenRequest
from segmap.server.accounts.throttle import TooManyAttempts
from segmap.server.db.base import utcnow
from segmap.server.errors import NotAuthenticated
from segmap.server.settings import Settings
from segmap.server.web import auth
from segmap.server.web.auth import Principal, require_principal
from segmap.server.web.deps import api_principal, get_db, get_settings
from segmap.server.web.schemas import ERRORS, ErrorOut

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["auth"])

THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorOut, "description": "Too many failed log-ins; see Retry-After"}
}


def client_address(request: Request) -> str | None:
    """The caller's address (uvicorn puts a trusted proxy's X-Forwarded-For here)."""
    return request.client.host if request.client is not None else None


def throttled_response(exc: TooManyAttempts) -> JSONResponse:
    """429 with the reason and a ``Retry-After`` header (seconds)."""
    return JSONResponse(
        {"detail": exc.message, "retry_after_s": exc.retry_after_s},
        status_code=429,
        headers=exc.headers,
    )


@router.post("/auth/token", response_model=TokenOut, responses=THROTTLED, name="api_create_token")
def create_token(
    request: Request,
    body: TokenRequest,
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> Response | TokenOut:
    """Exchange a username and password for an API token (it lasts
    ``SEGMAP_TOKEN_MAX_AGE_S`` seconds, 30 days unless the operator set otherwise).

    Failed attempts are throttled per account and per address (429 with Retry-After)."""
    try:
        principal = service.require_login(
            db, body.username, body.password, address=client_address(request), via="token"
        )
    except TooManyAttempts as exc:
        return throttled_response(exc)
    token = service.issue_token(db, principal)
    max_age = settings.token_max_age_s
    expires_at = utcnow() + timedelta(seconds=max_age) if max_age else None
    return TokenOut(token=token, expires_at=expires_at)


@router.delete("/auth/token", status_code=204, name="api_delete_token")
def delete_token(request: Request, db: Session = Depends(get_db)) -> Response:
    """Revoke the bearer token this request is made with."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send the token to revoke as 'Authorization: Bearer <token>'")
    if not service.revoke_token(db, token.strip()):
        raise NotAuthenticated("the API token is not valid (already revoked or mistyped)")
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, name="api_me")
def me(principal: Principal | None = Depends(api_principal)) -> MeOut:
    """Who the request is authenticated as."""
    who = require_principal(principal)
    return MeOut(username=who.username, is_admin=who.is_admin)


@router.post("/me/password", status_code=204, responses=THROTTLED, name="api_change_password")
def change_password(
    request: Request,
    body: PasswordChangeIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Change your password (send the current one too).

    Every other log-in session of yours ends and every API token of yours is revoked,
    the one this request is made with included; a browser session making the change
    stays logged in."""
    keep = auth.current_session_id(request) if principal and principal.via == "session" else None
    try:
        service.change_own_password(
            db,
            principal,
            body.current_password,
            body.new_password,
            address=client_address(request),
            keep_session=keep,
        )
    except TooManyAttempts as exc:
        return throttled_response(exc)
    return Response(status_code=204)
