"""Hostile ids in every path of the app, through a real uvicorn (issue 9, point 4).

Every route of the app (read from ``app.routes``, so a new route is walked without
editing this file) is called with each hostile value in each of its path parameters,
the other parameters naming things that exist, so the hostile value reaches the
lookup. The answer must be a 404 or 422 -- on ``/api/`` with the one JSON shape
``{"detail": ...}``, on pages an HTML page -- never a 500 and never a dropped
connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from imaging_data import multipart, write_phantom_rtstruct, write_study
from server_fixtures import PASSWORD, ThreadedServer, World

HOSTILE_IDS = (
    "²",  # a superscript: str.isdigit() is True, int() refuses it
    "１",  # full-width one: int() reads it as 1
    " 1",  # a space before a real id
    "1\n",  # a newline after a real id
    "9" * 30,  # wider than any database integer
    str(2**63),  # one past the largest 64-bit id
    str(2**31 - 1),  # the largest id (a PostgreSQL INTEGER): valid, and names nothing
    str(2**31),  # one past it: PostgreSQL refuses to compare it with an INTEGER column
    str(2**63 - 1),
    "-1",
)
# Folder, file and collection names may be "²" or 30 digits (they are names, not ids);
# what no name can be is padded with spaces or broken by a line break.
HOSTILE_NAMES = (" 1", "1\n", "region2MaskValueMap.txt\n", " maps")
NAME_PARAMS = ("folder", "name", "label")
# Roots that answer JSON refusals (the REST API and the DICOMweb roots); pages answer HTML.
JSON_ROOTS = ("/api/", "/dicomweb/")
MAP_TEXT = "Liver=1\nSpleen=2\nLeft Kidney=3\nRight Kidney=4\nTumour=5\n"


@dataclass
class Everything:
    """One of each thing a path can name, made through the API, and who may see them."""

    server: ThreadedServer
    token: str
    values: dict[str, str]
    pages: httpx.Client
    csrf: str


def _routes(app: Any) -> Iterator[Any]:
    """Every route with its full path, whether mounted directly or through a router."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


def _log_in(base: str, username: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=30)
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert found is not None
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": found.group(1)},
    )
    assert r.status_code in (200, 303), r.text
    page = client.get("/projects").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    return client, token.group(1)


@pytest.fixture()
def everything(
    world: World, threaded_server: ThreadedServer, tmp_path: Path
) -> Iterator[Everything]:
    c, owner = world.client, world.h("owner")
    study = write_study(tmp_path / "dicom", seed=7, patient_id="IDS")
    r = c.post("/api/v1/projects/P/sessions", files=multipart(study.files), headers=owner)
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    base = f"/api/v1/projects/P/sessions/{session['id']}"
    r = c.put(
        f"{base}/collections/annot",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=owner,
    )
    assert r.status_code == 201, r.text
    r = c.put(
        f"{world.model_url}/resources/maps/files/region2MaskValueMap.txt",
        content=MAP_TEXT.encode(),
        headers=owner,
    )
    assert r.status_code in (200, 201), r.text
    r = c.post(f"{world.model_url}/convert", json={}, headers=owner)
    assert r.status_code == 202, r.text
    job_id = r.json()["jobs"][0]["id"]
    values = {
        "project": "P",
        "model": str(world.model_id),
        "session": str(session["id"]),
        "scan": str(session["scans"][0]["id"]),
        "label": "annot",
        "folder": "maps",
        "name": "region2MaskValueMap.txt",
        "username": "member",
        "job_id": str(job_id),
    }
    pages, csrf = _log_in(threaded_server.url, "admin")
    token = world.h("admin")["Authorization"].removeprefix("Bearer ")
    yield Everything(threaded_server, token, values, pages, csrf)
    pages.close()


# JSON bodies that are valid for each API route that takes one, so a refusal is about the id.
BODIES: dict[str, Any] = {
    "api_patch_model": {"automation": False},
    "api_convert": {},
    "api_set_member": {"username": "collab", "role": "collaborator"},
    "api_create_model": {"label": "another", "voxel_spacing": [1, 1, 1]},
}


# Form fields of each page form with a path parameter, valid apart from the path.
FORMS: dict[str, dict[str, str]] = {
    "add_member": {"username": "collab", "role": "collaborator"},
    "remove_member": {"username": "collab"},
    "install_model": {"label": "third", "spacing_x": "1", "spacing_y": "1", "spacing_z": "1"},
    "editor_save": {"label": "Liver", "value": "1", "folder": "maps"},
}


def _call(e: Everything, route: Any, method: str, param: str, hostile: str) -> httpx.Response:
    # Parameters the fixture has no row for (DICOMweb UIDs, a dataset's picture, the
    # viewer's file path) get a plain value: only the hostile one is under test.
    params = {k: quote(e.values.get(k, "1"), safe="") for k in route.param_convertors}
    params[param] = quote(hostile, safe="")
    path = route.path_format.format(**params)
    if path.startswith(JSON_ROOTS):
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {e.token}"}}
        if route.name in BODIES:
            kwargs["json"] = BODIES[route.name]
        elif method == "PUT":
            kwargs["content"] = MAP_TEXT.encode()
            if route.name == "api_put_collection":
                kwargs["params"] = {"type": "RTSTRUCT"}
        with httpx.Client(base_url=e.server.url, timeout=30) as client:
            return client.request(method, path, **kwargs)
    # A page form that fails may answer with a redirect and a flash message: where it
    # leads must then be the refusal.
    data = {"csrf_token": e.csrf, **FORMS.get(route.name, {})} if method == "POST" else None
    return e.pages.request(method, path, data=data, follow_redirects=True)


def _empty_search(r: httpx.Response) -> bool:
    if r.status_code == 204:
        return True
    try:
        return r.status_code == 200 and r.json() == []
    except ValueError:
        return False


def test_every_path_refuses_hostile_ids_with_404_or_422(everything: Everything) -> None:
    walked, failures = 0, []
    for route in _routes(everything.server.app):
        convertors = getattr(route, "param_convertors", {})
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            for param in convertors:
                for hostile in HOSTILE_NAMES if param in NAME_PARAMS else HOSTILE_IDS:
                    walked += 1
                    where = f"{method} {route.path} {param}={hostile!r}"
                    try:
                        r = _call(everything, route, method, param, hostile)
                    except httpx.TransportError as exc:
                        failures.append(f"{where}: connection failed ({exc!r})")
                        continue
                    if route.path.startswith("/dicomweb/") and _empty_search(r):
                        continue  # QIDO's answer to a UID it does not hold (PS3.18 §10.6)
                    if route.path.startswith("/ohif/") and r.status_code in (200, 404):
                        continue  # OHIF's own client-side routes (tests/test_viewer_serving.py)
                    if route.path.startswith("/xapi/") and 400 <= r.status_code < 500:
                        continue  # XNAT's call answers refusals in XNAT's terms
                    dicomweb_refusal = (
                        route.path.startswith("/dicomweb/") and 400 <= r.status_code < 500
                    )
                    if r.status_code not in (404, 422) and not dicomweb_refusal:
                        failures.append(f"{where}: {r.status_code} {r.text[:200]}")
                    elif route.path.startswith(JSON_ROOTS):
                        try:
                            body = r.json()
                        except ValueError:
                            body = None
                        if not isinstance(body, dict) or "detail" not in body:
                            failures.append(f"{where}: not the error shape: {r.text[:200]}")
                    elif "text/html" not in r.headers.get("content-type", ""):
                        failures.append(f"{where}: a page route answered {r.headers}")
    assert walked > 300, f"only {walked} calls: the route walk found too few routes"
    assert not failures, f"{len(failures)} of {walked} calls misbehaved:\n" + "\n".join(
        failures[:60]
    )
