"""REST API: tokens, projects, members and models — every endpoint, role and bad input.

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from segmap.server.accounts.service import authenticate, create_user
from segmap.server.db.accounts import ApiToken, User
from segmap.server.db.base import utcnow
from segmap.server.db.registry import Membership
from segmap.server.errors import Conflict
from segmap.server.registry.projects import remove_member
from segmap.server.settings import Settings, SettingsError
from segmap.server.web.auth import Principal

if TYPE_CHECKING:
    from server_fixtures import Api, World


PASSWORD = "correct horse battery staple"  # server_fixtures.PASSWORD


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _detail(r: Any) -> str:
    body = r.json()
    assert "detail" in body, body
    return str(body["detail"])


# --- tokens -----------------------------------------------------------------------------


def test_token_for_right_password_works_as_bearer(api: Api) -> None:
    api.make_user("alice")
    r = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    token = r.json()["token"]
    me = api.client.get("/api/v1/me", headers=_bearer(token))
    assert me.status_code == 200
    assert me.json() == {"username": "alice", "is_admin": False}


def test_username_is_case_insensitive_at_login(api: Api) -> None:
    api.make_user("alice")
    r = api.client.post("/api/v1/auth/token", json={"username": "ALICE", "password": PASSWORD})
    assert r.status_code == 200


def test_token_refused_for_wrong_credentials(api: Api) -> None:
    api.make_user("alice")
    for body in (
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": PASSWORD},
        {"username": "alice", "password": ""},
        {"username": "", "password": ""},
    ):
        r = api.client.post("/api/v1/auth/token", json=body)
        assert r.status_code == 401, body
        assert "wrong username or password" in _detail(r)


MALFORMED_TOKEN_REQUESTS: list[dict[str, Any]] = [
    {"json": {"username": "alice"}},
    {"json": {"username": "alice", "password": PASSWORD, "extra": 1}},
    {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    {"json": ["alice", PASSWORD]},
]


def test_token_request_malformed_is_422_json(api: Api) -> None:
    for kwargs in MALFORMED_TOKEN_REQUESTS:
        r = api.client.post("/api/v1/auth/token", **kwargs)
        assert r.status_code == 422, kwargs
        assert isinstance(r.json()["detail"], list)


def test_only_token_digest_is_stored(api: Api) -> None:
    token = api.make_user("alice")
    with api.app.state.database.session() as db:
        stored = db.scalars(select(ApiToken.token_hash)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in stored


def test_passwords_are_argon2id_hashes(api: Api) -> None:

    with api.app.state.database.session(write=True) as db:
        create_user(db, "bob", "s3cret")
        row = db.scalar(select(User).where(User.username == "bob"))
        assert row is not None
        assert row.password_hash.startswith("$argon2id$")
        assert "s3cret" not in row.password_hash
        assert authenticate(db, "bob", "s3cret") is not None
        assert authenticate(db, "bob", "s3cret ") is None


def test_bad_authorization_header_is_401(api: Api) -> None:
    for value in ("Bearer smp_not-a-real-token", "Basic YWxpY2U6cHc=", "Bearer ", "token"):
        r = api.client.get("/api/v1/projects", headers={"Authorization": value})
        assert r.status_code == 401, value
        assert _detail(r)
        assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_token_stops_working(api: Api) -> None:
    h = _bearer(api.make_user("alice"))
    assert api.client.delete("/api/v1/auth/token", headers=h).status_code == 204
    r = api.client.get("/api/v1/projects", headers=h)
    assert r.status_code == 401
    assert api.client.delete("/api/v1/auth/token", headers=h).status_code == 401
    assert api.client.delete("/api/v1/auth/token").status_code == 401


def _age_tokens(api: Api, days: float) -> None:
    """Make every stored token ``days`` old."""
    with api.app.state.database.session(write=True) as db:
        for row in db.scalars(select(ApiToken)):
            row.created_at = utcnow() - timedelta(days=days)
        db.commit()


def test_token_says_when_it_expires_and_then_stops_working(api: Api) -> None:
    api.make_user("alice")
    before = utcnow()
    r = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    expires = datetime.fromisoformat(r.json()["expires_at"])
    # The default lifetime is 30 days (settings.DEFAULT_TOKEN_MAX_AGE_S), counted from now.
    assert timedelta(days=30) <= expires - before <= timedelta(days=30, minutes=1)
    h = _bearer(r.json()["token"])
    _age_tokens(api, 29.9)
    assert api.client.get("/api/v1/me", headers=h).status_code == 200
    _age_tokens(api, 30.1)
    r = api.client.get("/api/v1/me", headers=h)
    assert r.status_code == 401
    assert "expired" in _detail(r) and "POST /api/v1/auth/token" in _detail(r)


def test_tokens_never_expire_when_the_operator_says_so(api: Api) -> None:
    api.app.state.settings = replace(api.app.state.settings, token_max_age_s=0)
    api.make_user("alice")
    r = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert r.json()["expires_at"] is None
    _age_tokens(api, 3650)
    assert api.client.get("/api/v1/me", headers=_bearer(r.json()["token"])).status_code == 200


def test_token_lifetime_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMAP_TOKEN_MAX_AGE_S", "3600")
    assert Settings.from_env("/tmp/x").token_max_age_s == 3600
    for bad in ("an hour", "-5"):
        monkeypatch.setenv("SEGMAP_TOKEN_MAX_AGE_S", bad)
        with pytest.raises(SettingsError, match="SEGMAP_TOKEN_MAX_AGE_S"):
            Settings.from_env("/tmp/x")


ENDPOINTS = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/projects"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects/P"),
    ("GET", "/api/v1/projects/P/members"),
    ("POST", "/api/v1/projects/P/members"),
    ("DELETE", "/api/v1/projects/P/members/member"),
    ("GET", "/api/v1/projects/P/models"),
    ("POST", "/api/v1/projects/P/models"),
    ("GET", "/api/v1/projects/P/models/liver-ct"),
    ("DELETE", "/api/v1/projects/P/models/liver-ct"),
    ("GET", "/api/v1/projects/P/models/liver-ct/resources"),
    ("PUT", "/api/v1/projects/P/models/liver-ct/resources/f"),
    ("DELETE", "/api/v1/projects/P/models/liver-ct/resources/f"),
    ("PUT", "/api/v1/projects/P/models/liver-ct/resources/f/files/a.txt"),
    ("GET", "/api/v1/projects/P/models/liver-ct/resources/f/files/a.txt"),
    ("DELETE", "/api/v1/projects/P/models/liver-ct/resources/f/files/a.txt"),
    ("GET", "/api/v1/projects/P/models/liver-ct/region-map"),
]


def test_every_endpoint_needs_login(world: World) -> None:
    for method, path in ENDPOINTS:
        _check_anonymous(world, method, path)


def _check_anonymous(world: World, method: str, path: str) -> None:
    bodies = {
        "/api/v1/projects": {"id": "Q", "name": "Q"},
        "/api/v1/projects/P/members": {"username": "outsider", "role": "member"},
        "/api/v1/projects/P/models": {"label": "m", "voxel_spacing": [1, 1, 1]},
    }
    kwargs: dict[str, Any] = {}
    if method == "POST":
        kwargs["json"] = bodies[path]
    elif method == "PUT":
        kwargs["content"] = b"x"
    r = world.client.request(method, path, **kwargs)
    assert r.status_code == 401, (method, path, r.text)
    assert "log in" in _detail(r)


# --- projects ---------------------------------------------------------------------------


def test_create_and_list_projects(world: World) -> None:
    c = world.client
    r = c.post("/api/v1/projects", json={"id": "Q-2", "name": "Second"}, headers=world.h("member"))
    assert r.status_code == 201
    body = r.json()
    assert body["id"] == "Q-2" and body["name"] == "Second"
    assert body["role"] == "owner" and body["created_by"] == "member"
    mine = c.get("/api/v1/projects", headers=world.h("member")).json()
    assert [(p["id"], p["role"]) for p in mine] == [("P", "member"), ("Q-2", "owner")]
    assert c.get("/api/v1/projects", headers=world.h("outsider")).json() == []
    everything = c.get("/api/v1/projects", headers=world.h("admin")).json()
    assert [(p["id"], p["role"]) for p in everything] == [("P", None), ("Q-2", None)]
    collab = c.get("/api/v1/projects", headers=world.h("collab")).json()
    assert [(p["id"], p["role"]) for p in collab] == [("P", "collaborator")]


@pytest.mark.parametrize("project_id", ["P", "p"])
def test_duplicate_project_id_is_409(world: World, project_id: str) -> None:
    r = world.client.post(
        "/api/v1/projects", json={"id": project_id, "name": "again"}, headers=world.h("member")
    )
    assert r.status_code == 409
    assert "already exists" in _detail(r)


BAD_PROJECTS = [
    {"id": "", "name": "x"},
    {"id": "has space", "name": "x"},
    {"id": "../etc", "name": "x"},
    {"id": "a/b", "name": "x"},
    {"id": "-lead", "name": "x"},
    {"id": "x" * 65, "name": "x"},
    {"id": "OK", "name": ""},
    {"id": "OK", "name": "   "},
    {"id": "OK", "name": "n" * 201},
]


def test_bad_project_is_422(world: World) -> None:
    for body in BAD_PROJECTS:
        r = world.client.post("/api/v1/projects", json=body, headers=world.h("owner"))
        assert r.status_code == 422, body
        assert _detail(r)
    assert [
        p["id"] for p in world.client.get("/api/v1/projects", headers=world.h("owner")).json()
    ] == ["P"]


def test_malformed_project_body_is_422(world: World) -> None:
    for body in (
        {"id": "OK"},
        {"name": "x"},
        {"id": 5, "name": "x"},
        {"id": "OK", "name": "x", "k": 1},
    ):
        r = world.client.post("/api/v1/projects", json=body, headers=world.h("owner"))
        assert r.status_code == 422, body
        assert isinstance(r.json()["detail"], list)


def test_get_project_by_role(world: World) -> None:
    for who, role in (
        ("owner", "owner"),
        ("member", "member"),
        ("collab", "collaborator"),
        ("admin", None),
    ):
        r = world.client.get(world.project_url, headers=world.h(who))
        assert r.status_code == 200, who
        assert r.json()["role"] == role and r.json()["name"] == "Project P"
    r = world.client.get(world.project_url, headers=world.h("outsider"))
    assert r.status_code == 403
    assert "not a member" in _detail(r)


def test_missing_project_is_404(world: World) -> None:
    r = world.client.get("/api/v1/projects/NOPE", headers=world.h("admin"))
    assert r.status_code == 404
    assert "NOPE" in _detail(r)
    r = world.client.get("/api/v1/projects/NOPE/models", headers=world.h("owner"))
    assert r.status_code == 404


# --- members ----------------------------------------------------------------------------


def test_members_listed_with_roles(world: World) -> None:
    for who in ("owner", "member", "collab", "admin"):
        r = world.client.get(world.project_url + "/members", headers=world.h(who))
        assert r.status_code == 200
        assert r.json() == [
            {"username": "owner", "role": "owner"},
            {"username": "member", "role": "member"},
            {"username": "collab", "role": "collaborator"},
        ]
    r = world.client.get(world.project_url + "/members", headers=world.h("outsider"))
    assert r.status_code == 403


def test_owner_adds_changes_and_removes_members(world: World) -> None:
    c, url = world.client, world.project_url + "/members"
    r = c.post(url, json={"username": "outsider", "role": "collaborator"}, headers=world.h("owner"))
    assert r.status_code == 201
    assert r.json() == {"username": "outsider", "role": "collaborator"}
    assert c.get(world.project_url, headers=world.h("outsider")).json()["role"] == "collaborator"
    r = c.post(url, json={"username": "outsider", "role": "owner"}, headers=world.h("owner"))
    assert r.status_code == 200
    assert c.get(world.project_url, headers=world.h("outsider")).json()["role"] == "owner"
    r = c.delete(url + "/outsider", headers=world.h("owner"))
    assert r.status_code == 204
    assert c.get(world.project_url, headers=world.h("outsider")).status_code == 403


def test_admin_outside_project_may_add_members(world: World) -> None:
    r = world.client.post(
        world.project_url + "/members",
        json={"username": "outsider", "role": "member"},
        headers=world.h("admin"),
    )
    assert r.status_code == 201


def test_non_owners_cannot_manage_members(world: World) -> None:
    c, url = world.client, world.project_url + "/members"
    for who in ("member", "collab", "outsider"):
        r = c.post(url, json={"username": "outsider", "role": "owner"}, headers=world.h(who))
        assert r.status_code == 403, who
        assert _detail(r)
        r = c.delete(url + "/member", headers=world.h(who))
        assert r.status_code == 403, who
    assert len(c.get(url, headers=world.h("owner")).json()) == 3


BAD_MEMBERS = [
    ({"username": "ghost", "role": "member"}, 404),
    ({"username": "outsider", "role": "admin"}, 422),
    ({"username": "outsider", "role": ""}, 422),
    ({"username": "outsider"}, 422),
    ({"username": "outsider", "role": "member", "x": 1}, 422),
]


def test_bad_member_requests(world: World) -> None:
    for body, status in BAD_MEMBERS:
        r = world.client.post(world.project_url + "/members", json=body, headers=world.h("owner"))
        assert r.status_code == status, body
        assert r.json()["detail"]
    assert world.client.get(world.project_url, headers=world.h("outsider")).status_code == 403


def test_last_owner_cannot_be_demoted_or_removed(world: World) -> None:
    c, url = world.client, world.project_url + "/members"
    r = c.post(url, json={"username": "owner", "role": "member"}, headers=world.h("owner"))
    assert r.status_code == 409
    assert "last owner" in _detail(r)
    assert c.delete(url + "/owner", headers=world.h("admin")).status_code == 409
    assert c.delete(url + "/outsider", headers=world.h("owner")).status_code == 404
    assert c.delete(url + "/ghost", headers=world.h("owner")).status_code == 404
    # With a second owner the first may step down.
    c.post(url, json={"username": "member", "role": "owner"}, headers=world.h("owner"))
    r = c.post(url, json={"username": "owner", "role": "member"}, headers=world.h("owner"))
    assert r.status_code == 200


# --- models -----------------------------------------------------------------------------


def test_model_created_with_all_fields(world: World) -> None:
    r = world.client.get(world.model_url, headers=world.h("collab"))
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == world.model_id
    assert body["project"] == "P"
    assert body["label"] == "liver-ct"
    assert body["description"] == "Liver"
    assert body["voxel_spacing"] == [1.0, 1.0, 2.5]
    assert body["automation"] is False
    assert body["created_by"] == "owner"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


@pytest.mark.parametrize(("who", "status"), [("owner", 201), ("admin", 201)])
def test_owner_and_admin_create_models(world: World, who: str, status: int) -> None:
    r = world.client.post(
        world.project_url + "/models",
        json={"label": f"model by {who}", "voxel_spacing": [0.5, 0.75, 3]},
        headers=world.h(who),
    )
    assert r.status_code == status
    assert r.json()["voxel_spacing"] == [0.5, 0.75, 3.0]
    assert r.json()["description"] == ""


def test_others_cannot_create_or_delete_models(world: World) -> None:
    for who in ("member", "collab", "outsider"):
        r = world.client.post(
            world.project_url + "/models",
            json={"label": "nope", "voxel_spacing": [1, 1, 1]},
            headers=world.h(who),
        )
        assert r.status_code == 403, who
        assert _detail(r)
        r = world.client.delete(world.model_url, headers=world.h(who))
        assert r.status_code == 403, who
    assert world.client.get(world.model_url, headers=world.h("owner")).status_code == 200
    models = world.client.get(world.project_url + "/models", headers=world.h("owner")).json()
    assert [m["label"] for m in models] == ["liver-ct"]


BAD_MODELS = [
    {"label": "m", "voxel_spacing": [1, 1]},
    {"label": "m", "voxel_spacing": [1, 1, 1, 1]},
    {"label": "m", "voxel_spacing": [1, 0, 1]},
    {"label": "m", "voxel_spacing": [1, -2, 1]},
    {"label": "m", "voxel_spacing": [1, 1, 5000]},
    {"label": "m", "voxel_spacing": ["a", 1, 1]},
    {"label": "m", "voxel_spacing": "1,1,1"},
    {"label": "m"},
    {"voxel_spacing": [1, 1, 1]},
    {"label": "", "voxel_spacing": [1, 1, 1]},
    {"label": "a/b", "voxel_spacing": [1, 1, 1]},
    {"label": "..", "voxel_spacing": [1, 1, 1]},
    {"label": "123", "voxel_spacing": [1, 1, 1]},
    {"label": " padded", "voxel_spacing": [1, 1, 1]},
    {"label": "m", "voxel_spacing": [1, 1, 1], "colour": "red"},
]


def test_bad_model_is_422(world: World) -> None:
    for body in BAD_MODELS:
        r = world.client.post(world.project_url + "/models", json=body, headers=world.h("owner"))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"]
    models = world.client.get(world.project_url + "/models", headers=world.h("owner")).json()
    assert [m["label"] for m in models] == ["liver-ct"]


@pytest.mark.parametrize("label", ["liver-ct", "LIVER-CT"])
def test_duplicate_model_label_is_409(world: World, label: str) -> None:
    r = world.client.post(
        world.project_url + "/models",
        json={"label": label, "voxel_spacing": [1, 1, 1]},
        headers=world.h("owner"),
    )
    assert r.status_code == 409
    assert "liver-ct" in _detail(r)


def test_models_listed_for_every_role(world: World) -> None:
    world.client.post(
        world.project_url + "/models",
        json={"label": "Abdomen", "voxel_spacing": [1, 1, 1]},
        headers=world.h("owner"),
    )
    for who in ("owner", "member", "collab", "admin"):
        r = world.client.get(world.project_url + "/models", headers=world.h(who))
        assert r.status_code == 200
        assert [m["label"] for m in r.json()] == ["Abdomen", "liver-ct"]
    r = world.client.get(world.project_url + "/models", headers=world.h("outsider"))
    assert r.status_code == 403
    assert world.client.get(world.model_url, headers=world.h("outsider")).status_code == 403


def test_model_addressed_by_id_or_label(world: World) -> None:
    c = world.client
    by_label = c.get(world.project_url + "/models/LIVER-CT", headers=world.h("member"))
    assert by_label.status_code == 200
    assert by_label.json()["id"] == world.model_id
    for ref in ("999", "unknown"):
        r = c.get(world.project_url + f"/models/{ref}", headers=world.h("member"))
        assert r.status_code == 404
        assert ref in _detail(r)


def test_model_of_another_project_is_not_reachable(world: World) -> None:
    c = world.client
    c.post("/api/v1/projects", json={"id": "Q", "name": "Q"}, headers=world.h("member"))
    r = c.get(f"/api/v1/projects/Q/models/{world.model_id}", headers=world.h("member"))
    assert r.status_code == 404


def test_delete_model_removes_it_and_its_files(world: World) -> None:
    c = world.client
    url = world.file_url("maps", "weights.bin")
    assert c.put(url, content=b"\x00" * 100, headers=world.h("owner")).status_code == 201
    storage = world.api.app.state.storage
    assert sum(1 for p in storage.objects.rglob("*") if p.is_file()) == 1
    assert c.delete(world.model_url, headers=world.h("owner")).status_code == 204
    assert c.get(world.model_url, headers=world.h("owner")).status_code == 404
    assert c.get(url, headers=world.h("owner")).status_code == 404
    assert sum(1 for p in storage.objects.rglob("*") if p.is_file()) == 0
    assert c.delete(world.model_url, headers=world.h("owner")).status_code == 404


def test_admin_deletes_any_model(world: World) -> None:
    assert world.client.delete(world.model_url, headers=world.h("admin")).status_code == 204


# --- errors and documentation -----------------------------------------------------------


def test_unknown_api_route_is_json_404(world: World) -> None:
    r = world.client.get("/api/v1/no/such/thing", headers=world.h("owner"))
    assert r.status_code == 404
    assert "/api/v1/no/such/thing" in _detail(r)
    assert r.headers["content-type"].startswith("application/json")


def test_wrong_method_is_json_405(world: World) -> None:
    r = world.client.patch("/api/v1/projects", headers=world.h("owner"))
    assert r.status_code == 405
    assert "PATCH" in _detail(r)


def test_openapi_documents_the_contract(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    m = "/api/v1/projects/{project}/models/{model}"
    expected = {
        "/api/v1/auth/token": {"post"},
        "/api/v1/projects": {"get", "post"},
        "/api/v1/projects/{project}/members": {"post"},
        "/api/v1/projects/{project}/models": {"get", "post"},
        m: {"get", "delete"},
        m + "/resources": {"get"},
        m + "/resources/{folder}": {"put"},
        m + "/resources/{folder}/files/{name}": {"put", "get", "delete"},
        m + "/region-map": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))


def test_two_owners_removing_each_other_at_once_leave_one(world: World) -> None:
    """The second removal waits for the first and then sees the one owner left."""
    c, url = world.client, world.project_url + "/members"
    r = c.post(url, json={"username": "member", "role": "owner"}, headers=world.h("owner"))
    assert r.status_code == 200
    database = world.api.app.state.database
    with database.session() as db:
        ids = {u.username: u.id for u in db.scalars(select(User))}
    admin = Principal(ids["admin"], "admin", is_admin=True)

    outcome: list[BaseException | None] = []

    def second_removal() -> None:
        with database.session(write=True) as db:
            try:
                remove_member(db, admin, "P", "member")
                outcome.append(None)
            except Conflict as exc:
                outcome.append(exc)

    # The first removal takes the owners' rows and deletes one, and has not committed yet.
    with database.session(write=True) as first:
        owner_rows = first.scalars(
            select(Membership)
            .where(Membership.project_id == "P", Membership.role == "owner")
            .with_for_update()
        ).all()
        assert len(owner_rows) == 2
        first.delete(next(m for m in owner_rows if m.user_id == ids["owner"]))
        first.flush()
        racer = threading.Thread(target=second_removal)
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive(), "the second removal did not wait for the first"
        first.commit()
    racer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    assert "last owner" in outcome[0].message
    r = c.get(url, headers=world.h("member"))
    assert [(m["username"], m["role"]) for m in r.json() if m["role"] == "owner"] == [
        ("member", "owner")
    ]
