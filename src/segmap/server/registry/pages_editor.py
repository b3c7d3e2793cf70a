"""The region map editor of a model (owners and site admins).

Path: ``/projects/{p}/machine-learning/models/{m}/region-map`` (GET shows it, POST saves).
The rows are checked with ``segmap.labelmap`` (``map_views.editor_problems``) and saved
as the canonical ``region2MaskValueMap.txt`` in the chosen folder.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from segmap.labelmap.problems import first_problems
from segmap.server.errors import ServiceError
from segmap.server.registry import files, folders, mlmodels
from segmap.server.registry.access import require_manage
from segmap.server.registry.map_views import editor_problems, editor_rows_of, region_map_view
from segmap.server.registry.navigation import MODELS_TAB, model_crumbs, project_tabs
from segmap.server.registry.presenters import present_model, present_project
from segmap.server.registry.regionmap import REGION_MAP_FILENAME
from segmap.server.settings import Settings
from segmap.server.storage import LocalStorage
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, get_settings, get_storage, optional_principal
from segmap.server.web.forms import field, logged_in, posted_form, take_back
from segmap.server.web.pages import Crumb, page_context, redirect, render, set_flash
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)

EDITOR = "/projects/{project}/machine-learning/models/{model}/region-map"
DEFAULT_MAP_FOLDER = "region-map"


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
    access, row = mlmodels.get_model(db, who, project, model)
    require_manage(access, "edit region maps")
    view = present_project(request, access.project, access.role, who)
    mview = present_model(request, row)
    current = region_map_view(request, db, storage, who, row)
    names = [f.name for f in folders.list_resources(db, who, project, row.label)]
    if rows is None:
        rows = editor_rows_of(current)
    if folder is None:
        folder = current.source.folder if current.source else (names[0] if names else "")
        folder = folder or DEFAULT_MAP_FOLDER
    context = page_context(
        request,
        who,
        project=view,
        model=mview,
        rows=rows,
        folder=folder,
        folders=names,
        current_source=current.source,
        server_problems=server_problems or [],
        save_url=path_for(request, "editor_save", project=view.id, model=row.label),
        model_url=mview.url,
        project_tabs=project_tabs(request, view.id),
        active_tab=MODELS_TAB,
        breadcrumbs=model_crumbs(request, view, mview, Crumb("Edit Region Map")),
    )
    return render(request, "editor.html", context, status_code=status_code)


@router.get(EDITOR, name="editor_page")
def editor_page(
    request: Request,
    project: str,
    model: str,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """The region map editor (owners and site admins), starting from the current map."""
    return _editor(request, db, storage, logged_in(principal), project, model)


@router.post(EDITOR, name="editor_save")
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
    who, form = await posted_form(request, principal)
    labels = [v if isinstance(v, str) else "" for v in form.getlist("label")]
    values = [v if isinstance(v, str) else "" for v in form.getlist("value")]
    folder = field(form, "folder").strip()
    rows = [{"label": label, "value": value} for label, value in zip(labels, values, strict=False)]
    # Permission first, so a collaborator's post is refused before anything is parsed.
    access, row = mlmodels.get_model(db, who, project, model)
    require_manage(access, "edit region maps")
    region_map, problems = editor_problems(labels, values)
    if not folder:
        problems.append(f"Choose the folder to save {REGION_MAP_FILENAME} into.")
    if region_map is None or problems:
        shown = first_problems(problems)  # a pasted file of 10,000 bad rows: 50 and a count
        return _editor(request, db, storage, who, project, model, rows, folder, shown, 422)
    try:
        files.save_file(
            db,
            storage,
            who,
            project,
            row.label,
            folder,
            REGION_MAP_FILENAME,
            region_map.to_text().encode("utf-8"),
            settings.max_upload_bytes,
        )
    except ServiceError as exc:
        take_back(db, exc, also_404=True)
        return _editor(
            request, db, storage, who, project, model, rows, folder, [exc.message], exc.status_code
        )
    count = len(region_map)
    set_flash(
        request,
        "success",
        f"Saved the region map ({count} region{'s' if count != 1 else ''}) "
        f"as {folder}/{REGION_MAP_FILENAME}.",
    )
    return redirect(path_for(request, "model_page", project=project, model=row.label))
