"""``/ohif/``: the OHIF dist's files, the SPA fallback, and the per-user ``app-config.js``.

- ``/ohif/app-config.js`` is generated per request (:mod:`.app_config`) and never cached
  (``private, no-cache``): it lists the caller's projects. An anonymous caller gets a
  config that sends the browser to the log-in page and back.
- A path naming a file of the dist is that file: content-hashed bundles with a year of
  caching, the rest revalidated (:func:`.dist.cache_control`).
- Any other path is one of OHIF's client-side routes (``/ohif/``, ``/ohif/segmentation/P``,
  ``/ohif/viewer``…) and answers ``index.html`` (revalidated), after log-in. A path that
  looks like a file (it has an extension) and is not one is a 404, so a missing bundle is
  never answered with HTML.
- Without an installed dist (``scripts/install-ohif.py``; ``SEGMAP_SKIP_OHIF=1`` skips it
  at set-up) every path answers a page that says so and how to install it.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy.orm import Session

from segmap.server.registry import mlmodels, projects
from segmap.server.storage import LocalStorage
from segmap.server.viewer.app_config import ProjectSource, app_config_js, dicomweb_root
from segmap.server.viewer.dist import BASE_PATH, REVALIDATE, OhifDist, cache_control
from segmap.server.viewer.presets import Preset, model_preset
from segmap.server.web.auth import Principal
from segmap.server.web.deps import get_db, get_storage, optional_principal
from segmap.server.web.pages import LOGIN_ROUTE, error_page, login_redirect
from segmap.server.web.urls import path_for

router = APIRouter(include_in_schema=False)

NOT_INSTALLED = (
    "The OHIF viewer is not installed on this segmap service. An administrator installs it "
    "with: .venv/bin/python scripts/install-ohif.py (set-up does this unless "
    "SEGMAP_SKIP_OHIF=1 was set)."
)
CONFIG_CACHE = "private, no-cache"


def installed_dist(request: Request) -> OhifDist | None:
    """The dist this service serves (found at start-up; see ``app.state.ohif_dist``)."""
    dist: OhifDist | None = getattr(request.app.state, "ohif_dist", None)
    return dist


@router.get("/ohif", name="viewer_home")
def viewer_home() -> Response:
    """``/ohif`` without its slash: OHIF's router base is ``/ohif/``."""
    return RedirectResponse(BASE_PATH, status_code=308)


@router.get("/ohif/app-config.js", name="viewer_config")
def viewer_config_js(
    request: Request,
    db: Session = Depends(get_db),
    storage: LocalStorage = Depends(get_storage),
    principal: Principal | None = Depends(optional_principal),
) -> Response:
    """OHIF's ``window.config`` for the caller (see :mod:`.app_config`)."""
    if principal is None:
        login = json.dumps(path_for(request, LOGIN_ROUTE))
        text = (
            "// Not logged in: go to the log-in page and come back.\n"
            "window.config = {dataSources: [], extensions: [], modes: []};\n"
            f"window.location.replace({login} + '?next=' + "
            "encodeURIComponent(window.location.pathname + window.location.search));\n"
        )
    else:
        sources, presets = _visible(request, db, storage, principal)
        text = app_config_js(sources, presets, principal.username)
    return Response(
        text,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": CONFIG_CACHE},
    )


@router.get("/ohif/{path:path}", name="viewer")
def viewer_file(request: Request, path: str) -> Response:
    """A file of the dist, or ``index.html`` for OHIF's own routes (see the module).

    The caller is looked up only for ``index.html``: the dist's files are the same for
    everyone, and a viewer loads hundreds of them, each once paying a database lookup."""
    dist = installed_dist(request)
    if dist is None:
        return error_page(request, 503, NOT_INSTALLED)
    found = dist.file(path)
    if found is not None:
        return FileResponse(found, headers={"Cache-Control": cache_control(found)})
    if PurePosixPath(path).suffix:
        return error_page(request, 404, f"The viewer has no file {path!r}.")
    if optional_principal(request) is None:
        return login_redirect(request)
    return FileResponse(
        dist.index_html, media_type="text/html", headers={"Cache-Control": REVALIDATE}
    )


def _visible(
    request: Request, db: Session, storage: LocalStorage, who: Principal
) -> tuple[list[ProjectSource], list[Preset]]:
    sources: list[ProjectSource] = []
    presets: list[Preset] = []
    for entry in projects.list_projects(db, who):
        project = entry.project
        sources.append(ProjectSource(project.id, project.name, dicomweb_root(project.id)))
        for model in mlmodels.list_models(db, who, project.id):
            preset = model_preset(request, db, storage, who, model)
            if preset is not None:
                presets.append(preset)
    return sources, presets
