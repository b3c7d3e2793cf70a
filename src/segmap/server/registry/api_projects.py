"""The projects API under ``/api/v1``: projects and their members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from segmap.server.accounts.service import find_user
from segmap.server.db.registry import ROLE_OWNER
from segmap.server.registry import projects
from segmap.server.registry.presenters import present_project
from segmap.server.registry.schemas import MemberIn, MemberOut, ProjectIn, ProjectOut
from segmap.server.web.auth import Principal, require_principal
from segmap.server.web.deps import api_principal, get_db
from segmap.server.web.schemas import not_found

router = APIRouter(prefix="/api/v1", responses=not_found("project"), tags=["projects"])

PROJECT = "/projects/{project}"


@router.get("/projects", response_model=list[ProjectOut], name="api_list_projects")
def list_projects(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[ProjectOut]:
    """Projects you belong to (every project for site admins)."""
    who = require_principal(principal)
    return [
        ProjectOut.model_validate(present_project(request, e.project, e.role, who))
        for e in projects.list_projects(db, principal)
    ]


@router.post("/projects", status_code=201, response_model=ProjectOut, name="api_create_project")
def create_project(
    request: Request,
    body: ProjectIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ProjectOut:
    """Create a project; you become its owner. Any logged-in user may."""
    project = projects.create_project(db, principal, body.id, body.name)
    who = require_principal(principal)
    return ProjectOut.model_validate(present_project(request, project, ROLE_OWNER, who))


@router.get(PROJECT, response_model=ProjectOut, name="api_get_project")
def get_project(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> ProjectOut:
    """One project."""
    access = projects.get_project(db, principal, project)
    view = present_project(request, access.project, access.role, access.principal)
    return ProjectOut.model_validate(view)


@router.get(PROJECT + "/members", response_model=list[MemberOut], name="api_list_members")
def list_members(
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> list[MemberOut]:
    """Members of a project with their roles."""
    return [
        MemberOut(username=m.username, role=m.role)
        for m in projects.list_members(db, principal, project)
    ]


@router.post(
    PROJECT + "/members",
    status_code=201,
    response_model=MemberOut,
    responses={200: {"model": MemberOut, "description": "Role of an existing member changed"}},
    name="api_set_member",
)
def set_member(
    project: str,
    body: MemberIn,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Any:
    """Add a user to a project or change their role (owners and admins)."""
    created = projects.set_member(db, principal, project, body.username, body.role)
    user = find_user(db, body.username)
    out = MemberOut(username=user.username if user else body.username, role=body.role)
    return JSONResponse(out.model_dump(), status_code=201 if created else 200)


@router.delete(PROJECT + "/members/{username}", status_code=204, name="api_remove_member")
def remove_member(
    project: str,
    username: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(api_principal),
) -> Response:
    """Take a user out of a project (owners and admins)."""
    projects.remove_member(db, principal, project, username)
    return Response(status_code=204)
