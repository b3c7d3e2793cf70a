"""The web pages: log-in, projects, the Machine Learning dashboard, models and their files.

Server-rendered Jinja2 over the same service functions as the REST API, so the pages and
the API enforce one set of rules. The Manage Files dialog and the region map editor add a
little plain JavaScript (``static/``); file uploads from the dialog go to the REST API with
the session cookie and the ``X-CSRF-Token`` header.

Paths (XNAT's path through its Machine Learning plugin)::

    /login, /logout
    /projects                                          project list (+ New Project)
    /projects/{p}                                      project page (Overview tab, Members)
    /projects/{p}/members, /projects/{p}/members/remove   Add Member, Remove (forms)
    /projects/{p}/machine-learning                     Machine Learning tab
    /projects/{p}/machine-learning/dashboard           Installed Models (+ Install Model)
    /projects/{p}/machine-learning/models/{m}          View Model (+ Manage Files dialog)
    /projects/{p}/machine-learning/models/{m}/region-map   region map editor
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.server import auth, services
from segmap.server.auth import Principal
from segmap.server.db.registry import ROLES
from segmap.server.deps import get_db, get_settings, get_storage, optional_principal
from segmap.server.errors import ServiceError, Unprocessable
from segmap.server.pages_common import (
    Crumb,
    error_page,
    login_redirect,
    page_context,
    project_crumbs,
    redirect,
    render,
    safe_next,
    sentence,
    set_flash,
)
from segmap.server.pages_views import (
    editor_problems,
    editor_rows_of,
    file_api_url,
    model_url,
    model_view,
    project_tabs,
    project_url,
    project_view,
    region_map_view,
    resources_api_url,
)
from segmap.server.services.access import require_manage
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage

router = APIRouter(include_in_schema=False)

DEFAULT_MAP_FOLDER = "region-map"


def html_error(request: Request, status_code: int, detail: str) -> Response:
    """401: off to the log-in page; anything else: the friendly error page."""
    if status_code == 401:
        return login_redirect(request)
    try:
        principal = optional_principal(request)
    except ServiceError:
        principal = None
    context: dict[str, Any] = {"user": principal}
    if principal is not None and "session" in request.scope:
        context["csrf_token"] = auth.csrf_token(request)
    return error_page(request, status_code, detail, context)


def _logged_in(principal: Principal | None) -> Principal:
    # Raising the service's own 401 lets the error handler send the browser to log in.
    return services.require_principal(principal)


def _take_back(db: Session, exc: ServiceError, also_404: bool = False) -> None:
    """A form the service refused: re-raise what the error page shows (401, 403, and
    404 when the page itself is gone), else roll back so the form can be shown again."""
    if exc.status_code in (401, 403) or (also_404 and exc.status_code == 404):
        raise exc
    db.rollback()


async def _posted_form(request: Request, principal: Principal | None) -> tuple[Principal, Any]:
    """The logged-in user and the posted form, once its CSRF token checks out."""
    who = _logged_in(principal)
    form = await request.form()
    auth.check_csrf(request, _field(form, "csrf_token"))
    return who, form


# ---------------------------------------------------------------- log-in and log-out


@router.get("/")
def home(principal: Principal | None = Depends(optional_principal)) -> Response:
    """The start page is the project list (or the log-in page)."""
    return redirect("/projects" if principal else "/login", status_code=302)


@router.get("/login")
def login_form(
    request: Request,
    next: str | None = None,  # noqa: A002 - the query parameter's name
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The log-in form (already logged in: straight on)."""
    if principal is not None:
        return redirect(safe_next(next), status_code=302)
    return render(
        request,
        "login.html",
        page_context(request, None, nav="login", next_url=safe_next(next), username="", error=None),
    )


@router.post("/login")
async def login_submit(request: Request, db: Session = Depends(get_db)) -> Response:
    """Check the password, start the session, go where the user was heading."""
    form = await request.form()
    auth.check_csrf(request, _field(form, "csrf_token"))
    username = _field(form, "username").strip()
    next_url = safe_next(_field(form, "next"))
    principal = services.authenticate(db, username, _field(form, "password"))
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


@router.post("/logout")
async def logout_submit(request: Request) -> Response:
    """End the browser session."""
    form = await request.form()
    auth.check_csrf(request, _field(form, "csrf_token"))
    auth.logout(request)
    set_flash(request, "info", "You have logged out.")
    return redirect("/login")


def _number(text: str, what: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise Unprocessable(f"the {what} {text!r} is not a number of mm, e.g. 1.5") from None


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- projects


def _projects(
    request: Request,
    db: Session,
    who: Principal,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    entries = services.list_projects(db, who)
    views = [
        project_view(e.project, e.role, who, len(services.list_models(db, who, e.project.id)))
        for e in entries
    ]
    context = page_context(
        request,
        who,
        projects=views,
        can_create=services.can_create_projects(who),
        form=form or {},
        form_error=form_error,
        breadcrumbs=[Crumb("Projects")],
    )
    return render(request, "projects.html", context, status_code=status_code)


@router.get("/projects")
def projects_page(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Every project the user belongs to (site admins: all), and the New Project form."""
    return _projects(request, db, _logged_in(principal))


@router.post("/projects")
async def new_project(
    request: Request,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The New Project form: create the project (the creator owns it), then show it."""
    who, form = await _posted_form(request, principal)
    fields = {key: _field(form, key).strip() for key in ("id", "name")}
    try:
        created = services.create_project(db, who, fields["id"], fields["name"])
    except ServiceError as exc:
        _take_back(db, exc)
        return _projects(request, db, who, fields, exc.message, exc.status_code)
    set_flash(request, "success", f"Created the project {created.name} ({created.id}).")
    return redirect(project_url(created.id))


def _overview(
    request: Request,
    db: Session,
    who: Principal,
    project: str,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    access = services.get_project(db, who, project)
    view = project_view(access.project, access.role, who)
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(view.id),
        active_tab="overview",
        members=services.list_members(db, who, project),
        models=services.list_models(db, who, project),
        can_manage=access.can_manage,
        roles=ROLES,
        members_url=f"{view.url}/members",
        form=form or {},
        form_error=form_error,
        breadcrumbs=project_crumbs(view),
    )
    return render(request, "project.html", context, status_code=status_code)


@router.get("/projects/{project}")
def project_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The project page, Overview tab: details and Members (+ Add Member for owners)."""
    return _overview(request, db, _logged_in(principal), project)


@router.post("/projects/{project}/members")
async def add_member(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Add Member form: give a user a role (an existing member gets the new one)."""
    who, form = await _posted_form(request, principal)
    fields = {key: _field(form, key).strip() for key in ("username", "role")}
    try:
        added = services.set_member(db, who, project, fields["username"], fields["role"])
    except ServiceError as exc:
        _take_back(db, exc)  # a missing project raises its 404 again while re-rendering
        return _overview(request, db, who, project, fields, exc.message, exc.status_code)
    username, role = fields["username"], fields["role"]
    done = f"Added {username} as {role}." if added else f"{username} is now {role}."
    set_flash(request, "success", done)
    return redirect(project_url(project))


@router.post("/projects/{project}/members/remove")
async def remove_member(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Remove (after the confirmation in the page): take a user out of the project."""
    who, form = await _posted_form(request, principal)
    username = _field(form, "username").strip()
    try:
        services.remove_member(db, who, project, username)
    except ServiceError as exc:
        _take_back(db, exc)
        set_flash(request, "error", sentence(exc.message))
        return redirect(project_url(project))
    set_flash(request, "success", f"Removed {username} from the project.")
    if username.casefold() == who.username.casefold() and not who.is_admin:
        return redirect("/projects")  # they left it: its page is closed to them now
    return redirect(project_url(project))


@router.get("/projects/{project}/machine-learning")
def machine_learning_tab(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The project's Machine Learning tab: what models are, and the way to the dashboard."""
    who = _logged_in(principal)
    access = services.get_project(db, who, project)
    view = project_view(access.project, access.role, who)
    models = [model_view(view.id, m) for m in services.list_models(db, who, project)]
    context = page_context(
        request,
        who,
        project=view,
        project_tabs=project_tabs(view.id),
        active_tab="machine-learning",
        models=models,
        dashboard_url=f"{view.url}/machine-learning/dashboard",
        breadcrumbs=project_crumbs(view, Crumb("Machine Learning")),
    )
    return render(request, "machine_learning.html", context)


# ---------------------------------------------------------------- dashboard


def _dashboard(
    request: Request,
    db: Session,
    who: Principal,
    project: str,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    access = services.get_project(db, who, project)
    view = project_view(access.project, access.role, who)
    models = [model_view(view.id, m) for m in services.list_models(db, who, project)]
    context = page_context(
        request,
        who,
        project=view,
        models=models,
        can_manage=access.can_manage,
        install_url=f"{view.url}/machine-learning/models",
        form=form or {},
        form_error=form_error,
        breadcrumbs=project_crumbs(
            view,
            Crumb("Machine Learning", f"{view.url}/machine-learning"),
            Crumb("Machine Learning dashboard"),
        ),
    )
    return render(request, "dashboard.html", context, status_code=status_code)


@router.get("/projects/{project}/machine-learning/dashboard")
def dashboard_page(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Machine Learning dashboard: Installed Models, and Install Model for owners."""
    return _dashboard(request, db, _logged_in(principal), project)


@router.post("/projects/{project}/machine-learning/models")
async def install_model(
    request: Request,
    project: str,
    db: Session = Depends(get_db),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The Install Model form: create the model, then show it."""
    who, form = await _posted_form(request, principal)
    fields = {
        key: _field(form, key)
        for key in ("label", "description", "spacing_x", "spacing_y", "spacing_z")
    }
    try:
        spacing = [_number(fields[f"spacing_{axis}"], f"voxel spacing {axis}") for axis in "xyz"]
        model = services.create_model(
            db,
            who,
            project,
            label=fields["label"].strip(),
            description=fields["description"].strip(),
            voxel_spacing=spacing,
        )
    except ServiceError as exc:
        _take_back(db, exc, also_404=True)
        return _dashboard(request, db, who, project, fields, exc.message, exc.status_code)
    set_flash(request, "success", f"Installed the model {model.label}.")
    return redirect(model_url(project, model.label))


# ---------------------------------------------------------------- View Model


@router.get("/projects/{project}/machine-learning/models/{model}")
def model_page(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """View Model: details, the region map as a table, Actions, the Manage Files dialog."""
    who = _logged_in(principal)
    access, row = services.get_model(db, who, project, model)
    view = project_view(access.project, access.role, who)
    mview = model_view(view.id, row)
    context = page_context(
        request,
        who,
        project=view,
        model=mview,
        region_map=region_map_view(db, storage, who, view.id, row),
        can_manage=access.can_manage,
        resources_api=resources_api_url(view.id, row.label),
        editor_url=f"{mview.url}/region-map",
        delete_url=f"{mview.url}/delete",
        dashboard_url=f"{view.url}/machine-learning/dashboard",
        breadcrumbs=_model_crumbs(view, mview),
    )
    return render(request, "model.html", context)


def _model_crumbs(project: Any, model: Any, *more: Crumb) -> list[Crumb]:
    return project_crumbs(
        project,
        Crumb("Machine Learning", f"{project.url}/machine-learning"),
        Crumb("Machine Learning dashboard", f"{project.url}/machine-learning/dashboard"),
        Crumb(model.label, model.url),
        *more,
    )


@router.post("/projects/{project}/machine-learning/models/{model}/delete")
async def delete_model(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Delete Model (after the confirmation in the page): the model and all its files."""
    who, form = await _posted_form(request, principal)
    _access, row = services.get_model(db, who, project, model)
    label = row.label
    services.delete_model(db, storage, who, project, label)
    set_flash(request, "success", f"Deleted the model {label} and its files.")
    return redirect(f"{project_url(project)}/machine-learning/dashboard")


# ---------------------------------------------------------------- region map editor


def _editor(
    request: Request,
    db: Session,
    storage: LocalStorage,
    who: Principal,
    project: str,
    model: str,
    rows: list[dict[str, str]] | None = None,
    folder: str | None = None,
    server_problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    access, row = services.get_model(db, who, project, model)
    require_manage(access, "edit region maps")
    view = project_view(access.project, access.role, who)
    mview = model_view(view.id, row)
    current = region_map_view(db, storage, who, view.id, row)
    folders = [f.name for f in services.list_resources(db, who, project, row.label)]
    if rows is None:
        rows = editor_rows_of(current)
    if folder is None:
        folder = current.source.folder if current.source else (folders[0] if folders else "")
        folder = folder or DEFAULT_MAP_FOLDER
    context = page_context(
        request,
        who,
        project=view,
        model=mview,
        rows=rows,
        folder=folder,
        folders=folders,
        current_source=current.source,
        server_problems=server_problems or [],
        save_url=f"{mview.url}/region-map",
        model_url=mview.url,
        breadcrumbs=_model_crumbs(view, mview, Crumb("Edit Region Map")),
    )
    return render(request, "editor.html", context, status_code=status_code)


@router.get("/projects/{project}/machine-learning/models/{model}/region-map")
def editor_page(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The region map editor (owners and site admins), starting from the current map."""
    return _editor(request, db, storage, _logged_in(principal), project, model)


@router.post("/projects/{project}/machine-learning/models/{model}/region-map")
async def editor_save(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    settings: Settings = Depends(get_settings),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """Validate the rows with ``segmap.labelmap`` and store the canonical file."""
    who, form = await _posted_form(request, principal)
    labels = [v if isinstance(v, str) else "" for v in form.getlist("label")]
    values = [v if isinstance(v, str) else "" for v in form.getlist("value")]
    folder = _field(form, "folder").strip()
    rows = [{"label": label, "value": value} for label, value in zip(labels, values, strict=False)]
    # Permission first, so a collaborator's post is refused before anything is parsed.
    access, row = services.get_model(db, who, project, model)
    require_manage(access, "edit region maps")
    region_map, problems = editor_problems(labels, values)
    if not folder:
        problems.append("Choose the folder to save region2MaskValueMap.txt into.")
    if region_map is None or problems:
        return _editor(request, db, storage, who, project, model, rows, folder, problems, 422)
    try:
        services.save_file(
            db,
            storage,
            who,
            project,
            row.label,
            folder,
            services.REGION_MAP_FILENAME,
            region_map.to_text().encode("utf-8"),
            settings.max_upload_bytes,
        )
    except ServiceError as exc:
        _take_back(db, exc, also_404=True)
        return _editor(
            request, db, storage, who, project, model, rows, folder, [exc.message], exc.status_code
        )
    count = len(region_map)
    set_flash(
        request,
        "success",
        f"Saved the region map ({count} region{'s' if count != 1 else ''}) "
        f"as {folder}/{services.REGION_MAP_FILENAME}.",
    )
    return redirect(model_url(project, row.label))


__all__ = ["file_api_url", "html_error", "router"]
