"""The auth API under ``/api/v1``: tokens for a password, revoking them, who am I."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server.accounts import service
from segmap.server.accounts.schemas import MeOut, TokenOut, TokenRequest
from segmap.server.db.base import utcnow
from segmap.server.errors import NotAuthenticated
from segmap.server.settings import Settings
from segmap.server.web.auth import Principal, require_principal
from segmap.server.web.deps import api_principal, get_db, get_settings
from segmap.server.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["auth"])


@router.post("/auth/token", response_model=TokenOut, name="api_create_token")
def create_token(
    body: TokenRequest,
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> TokenOut:
    """Exchange a username and password for an API token (it lasts
    ``SEGMAP_TOKEN_MAX_AGE_S`` seconds, 30 days unless the operator set otherwise)."""
    principal = service.authenticate(db, body.username, body.password, via="token")
    if principal is None:
        raise NotAuthenticated("wrong username or password")
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
