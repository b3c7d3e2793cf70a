"""REST API: model folders, files and the region map — every role and bad input.

Each test runs on SQLite and on PostgreSQL. Checksums are computed here with hashlib,
independently of the server.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from server_fixtures import World


TEST_MAX_UPLOAD = 3 * 1024 * 1024  # server_fixtures.TEST_MAX_UPLOAD
MAP = "region2MaskValueMap.txt"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _detail(r: Any) -> str:
    body = r.json()
    assert "detail" in body, body
    return str(body["detail"])


def _objects(world: World) -> list[bytes]:
    """Contents of every stored object (to prove nothing extra was kept)."""
    root = world.api.app.state.storage.objects
    return sorted(p.read_bytes() for p in root.rglob("*") if p.is_file())


def _staging_files(world: World) -> list[str]:
    return sorted(p.name for p in world.api.app.state.storage.staging.iterdir())


def _listing(world: World, who: str = "owner") -> dict[str, list[dict[str, Any]]]:
    r = world.client.get(world.model_url + "/resources", headers=world.h(who))
    assert r.status_code == 200
    return {f["name"]: f["files"] for f in r.json()}


# --- folders ----------------------------------------------------------------------------


def test_create_folder_then_again(world: World) -> None:
    url = world.model_url + "/resources/training"
    r = world.client.put(url, headers=world.h("owner"))
    assert r.status_code == 201
    assert r.json()["name"] == "training" and r.json()["files"] == []
    r = world.client.put(url, headers=world.h("admin"))
    assert r.status_code == 200
    assert _listing(world) == {"training": []}


def test_folder_names_differing_by_case_are_refused(world: World) -> None:
    world.client.put(world.model_url + "/resources/Maps", headers=world.h("owner"))
    r = world.client.put(world.model_url + "/resources/maps", headers=world.h("owner"))
    assert r.status_code == 422
    assert "only by case" in _detail(r)
    r = world.client.put(world.file_url("MAPS", "a.txt"), content=b"a", headers=world.h("owner"))
    assert r.status_code == 422
    assert list(_listing(world)) == ["Maps"]


def test_bad_folder_names_are_refused(world: World) -> None:
    for encoded in ("%2E%2E", "%2E", "%20lead", "trail%20", "a%01b", "a%5Cb", "x" * 256):
        r = world.client.put(world.model_url + "/resources/" + encoded, headers=world.h("owner"))
        assert r.status_code == 422, encoded
        assert _detail(r)
    assert _listing(world) == {}


def test_only_owners_and_admins_manage_folders(world: World) -> None:
    for who in ("member", "collab", "outsider"):
        r = world.client.put(world.model_url + "/resources/f", headers=world.h(who))
        assert r.status_code == 403, who
        assert _detail(r)
    world.client.put(world.model_url + "/resources/f", headers=world.h("owner"))
    for who in ("member", "collab", "outsider"):
        assert (
            world.client.delete(world.model_url + "/resources/f", headers=world.h(who)).status_code
            == 403
        )
    assert (
        world.client.delete(world.model_url + "/resources/f", headers=world.h("admin")).status_code
        == 204
    )
    assert _listing(world) == {}
    assert (
        world.client.delete(world.model_url + "/resources/f", headers=world.h("owner")).status_code
        == 404
    )


def test_delete_folder_removes_its_files(world: World) -> None:
    h = world.h("owner")
    world.client.put(world.file_url("f", "a.bin"), content=b"aaa", headers=h)
    world.client.put(world.file_url("g", "b.bin"), content=b"bbb", headers=h)
    assert world.client.delete(world.model_url + "/resources/f", headers=h).status_code == 204
    assert list(_listing(world)) == ["g"]
    assert _objects(world) == [b"bbb"]


def test_listing_visible_to_readers_not_outsiders(world: World) -> None:
    world.client.put(world.file_url("f", "a.bin"), content=b"12345", headers=world.h("owner"))
    for who in ("owner", "member", "collab", "admin"):
        files = _listing(world, who)["f"]
        assert [(f["name"], f["size"], f["sha256"]) for f in files] == [
            ("a.bin", 5, _sha(b"12345"))
        ]
        assert files[0]["uploaded_by"] == "owner"
    r = world.client.get(world.model_url + "/resources", headers=world.h("outsider"))
    assert r.status_code == 403


# --- files ------------------------------------------------------------------------------


def test_upload_download_round_trip_any_bytes(world: World) -> None:
    data = os.urandom(2 * 1024 * 1024 + 17)
    url = world.file_url("weights", "model.pt")
    r = world.client.put(url, content=data, headers=world.h("owner"))
    assert r.status_code == 201
    body = r.json()
    assert body["size"] == len(data) and body["sha256"] == _sha(data)
    assert body["folder"] == "weights" and body["name"] == "model.pt"
    for who in ("owner", "member", "collab", "admin"):
        got = world.client.get(url, headers=world.h(who))
        assert got.status_code == 200, who
        assert got.content == data
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["x-content-sha256"] == _sha(data)
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["x-content-type-options"] == "nosniff"


def test_download_refused_to_outsiders_and_anonymous(world: World) -> None:
    url = world.file_url("f", "secret.bin")
    world.client.put(url, content=b"s", headers=world.h("owner"))
    r = world.client.get(url, headers=world.h("outsider"))
    assert r.status_code == 403 and "not a member" in _detail(r)
    assert world.client.get(url).status_code == 401


def test_reupload_replaces_and_leaves_no_old_copy(world: World) -> None:
    url = world.file_url("f", "notes.txt")
    assert world.client.put(url, content=b"first", headers=world.h("owner")).status_code == 201
    r = world.client.put(url, content=b"second version", headers=world.h("admin"))
    assert r.status_code == 200
    assert r.json()["sha256"] == _sha(b"second version")
    assert r.json()["uploaded_by"] == "admin"
    assert world.client.get(url, headers=world.h("member")).content == b"second version"
    [entry] = _listing(world)["f"]
    assert entry["size"] == len(b"second version")
    assert _objects(world) == [b"second version"]


def test_upload_creates_missing_folder(world: World) -> None:
    r = world.client.put(world.file_url("new", "a.txt"), content=b"a", headers=world.h("owner"))
    assert r.status_code == 201
    assert list(_listing(world)) == ["new"]


def test_empty_file_is_allowed(world: World) -> None:
    url = world.file_url("f", "empty.dat")
    r = world.client.put(url, content=b"", headers=world.h("owner"))
    assert r.status_code == 201
    assert r.json()["size"] == 0 and r.json()["sha256"] == _sha(b"")
    assert world.client.get(url, headers=world.h("collab")).content == b""


def test_unicode_file_name_round_trip(world: World) -> None:
    name = "Léber ø 肝臓.nii.gz"
    url = world.file_url("f", quote(name))
    assert world.client.put(url, content=b"nii", headers=world.h("owner")).status_code == 201
    got = world.client.get(url, headers=world.h("member"))
    assert got.content == b"nii"
    assert quote(name, safe="") in got.headers["content-disposition"]
    assert [f["name"] for f in _listing(world)["f"]] == [name]


def test_only_owners_and_admins_upload_or_delete(world: World) -> None:
    url = world.file_url("f", "a.txt")
    for who in ("member", "collab", "outsider"):
        r = world.client.put(url, content=b"x", headers=world.h(who))
        assert r.status_code == 403, who
        assert _detail(r)
    assert _listing(world) == {}
    assert world.client.put(url, content=b"x", headers=world.h("owner")).status_code == 201
    for who in ("member", "collab", "outsider"):
        assert world.client.delete(url, headers=world.h(who)).status_code == 403
    assert world.client.delete(url, headers=world.h("owner")).status_code == 204
    assert world.client.get(url, headers=world.h("owner")).status_code == 404
    assert world.client.delete(url, headers=world.h("owner")).status_code == 404
    assert _objects(world) == []
    assert _listing(world) == {"f": []}


def test_missing_things_are_404_with_reason(world: World) -> None:
    h = world.h("owner")
    world.client.put(world.file_url("f", "a.txt"), content=b"a", headers=h)
    cases = [
        (world.file_url("f", "b.txt"), "b.txt"),
        (world.file_url("g", "a.txt"), "g"),
        (world.file_url("f", "A.TXT"), "A.TXT"),
        (f"{world.project_url}/models/nope/resources/f/files/a.txt", "nope"),
        (f"/api/v1/projects/NOPE/models/{world.model_id}/resources/f/files/a.txt", "NOPE"),
    ]
    for url, named in cases:
        r = world.client.get(url, headers=h)
        assert r.status_code == 404, url
        assert named in _detail(r)


def test_dangerous_or_empty_file_names_are_refused(world: World) -> None:
    h = world.h("owner")
    for encoded in (
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        "%2E",
        "",
        "%20",
        "a%00b",
        "..%5C..%5Cwin.ini",
        "sub%2Ffile.txt",
        "%20padded.txt",
        "x" * 256,
    ):
        r = world.client.put(world.file_url("f", encoded), content=b"evil", headers=h)
        assert r.status_code == 422, (encoded, r.text)
        assert _detail(r)
    # A line break never matches a route at all: refused before any handler runs.
    r = world.client.put(world.file_url("f", "a%0Ab"), content=b"evil", headers=h)
    assert r.status_code == 404
    assert _listing(world) == {}
    assert _objects(world) == []
    assert _staging_files(world) == []


def test_file_names_differing_only_by_case_are_refused(world: World) -> None:
    h = world.h("owner")
    assert (
        world.client.put(world.file_url("f", "Scan.nii"), content=b"1", headers=h).status_code
        == 201
    )
    r = world.client.put(world.file_url("f", "scan.NII"), content=b"2", headers=h)
    assert r.status_code == 422
    assert "Scan.nii" in _detail(r)
    assert world.client.get(world.file_url("f", "Scan.nii"), headers=h).content == b"1"
    # The same name in another folder is fine.
    assert (
        world.client.put(world.file_url("g", "scan.NII"), content=b"2", headers=h).status_code
        == 201
    )


def test_upload_over_limit_is_413_and_stores_nothing(world: World) -> None:
    h = world.h("owner")
    too_big = b"\xab" * (TEST_MAX_UPLOAD + 1)
    r = world.client.put(world.file_url("f", "big.bin"), content=too_big, headers=h)
    assert r.status_code == 413
    assert str(TEST_MAX_UPLOAD) in _detail(r)
    exactly = b"\xcd" * TEST_MAX_UPLOAD
    assert (
        world.client.put(world.file_url("f", "max.bin"), content=exactly, headers=h).status_code
        == 201
    )
    assert [f["name"] for f in _listing(world)["f"]] == ["max.bin"]
    assert _staging_files(world) == []


def test_streamed_upload_over_limit_is_stopped_while_streaming(world: World) -> None:
    """No Content-Length: the limit must be enforced as the chunks arrive."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(10):
            sent += 1
            yield b"\x01" * (1024 * 1024)

    h = world.h("owner")
    r = world.client.put(world.file_url("f", "stream.bin"), content=body(), headers=h)
    assert r.status_code == 413
    assert _listing(world) == {}
    assert _objects(world) == []
    assert _staging_files(world) == []


def test_streamed_upload_within_limit(world: World) -> None:
    chunks = [os.urandom(300_000) for _ in range(5)]
    h = world.h("owner")
    r = world.client.put(world.file_url("f", "s.bin"), content=iter(chunks), headers=h)
    assert r.status_code == 201
    assert r.json()["sha256"] == _sha(b"".join(chunks))
    assert world.client.get(world.file_url("f", "s.bin"), headers=h).content == b"".join(chunks)


# --- region map -------------------------------------------------------------------------

GOOD_MAP = (
    b"# organs first, small structures last\r\nLiver=10\r\n\r\nSpleen=20\r\nLeft Kidney = 31\r\n"
)
BAD_MAP = b"Liver=10\nSpleen=0\n\nKidney=abc\nLiver=11\n"


def test_region_map_upload_and_read_back(world: World) -> None:
    h = world.h("owner")
    r = world.client.put(world.file_url("maps", MAP), content=b"\xef\xbb\xbf" + GOOD_MAP, headers=h)
    assert r.status_code == 201
    for who in ("owner", "member", "collab", "admin"):
        got = world.client.get(world.model_url + "/region-map", headers=world.h(who))
        assert got.status_code == 200, who
        assert got.json() == {
            "regions": [
                {"label": "Liver", "value": 10},
                {"label": "Spleen", "value": 20},
                {"label": "Left Kidney", "value": 31},
            ],
            "source": {"folder": "maps", "file": MAP, "sha256": _sha(b"\xef\xbb\xbf" + GOOD_MAP)},
        }
    download = world.client.get(world.file_url("maps", MAP), headers=world.h("collab"))
    assert download.content == b"\xef\xbb\xbf" + GOOD_MAP
    r = world.client.get(world.model_url + "/region-map", headers=world.h("outsider"))
    assert r.status_code == 403


def test_invalid_region_map_refused_with_every_problem(world: World) -> None:
    h = world.h("owner")
    r = world.client.put(world.file_url("maps", MAP), content=BAD_MAP, headers=h)
    assert r.status_code == 422
    body = r.json()
    # Problems on line 2 (background value), 4 (not a number), 5 (duplicate label).
    assert [p["line"] for p in body["problems"]] == [2, 4, 5]
    assert [p["text"] for p in body["problems"]] == ["Spleen=0", "Kidney=abc", "Liver=11"]
    assert all(p["message"] for p in body["problems"])
    for line in (2, 4, 5):
        assert f"{MAP}:{line}:" in body["detail"]
    assert _listing(world) == {}
    assert _objects(world) == []
    r = world.client.get(world.model_url + "/region-map", headers=h)
    assert r.status_code == 404


def test_invalid_region_map_does_not_replace_valid_one(world: World) -> None:
    h = world.h("owner")
    world.client.put(world.file_url("maps", MAP), content=GOOD_MAP, headers=h)
    assert (
        world.client.put(world.file_url("maps", MAP), content=BAD_MAP, headers=h).status_code == 422
    )
    assert world.client.get(world.file_url("maps", MAP), headers=h).content == GOOD_MAP
    assert len(world.client.get(world.model_url + "/region-map", headers=h).json()["regions"]) == 3


def test_region_map_name_checked_case_insensitively(world: World) -> None:
    h = world.h("owner")
    r = world.client.put(world.file_url("other", MAP.upper()), content=b"Liver=0\n", headers=h)
    assert r.status_code == 422
    assert r.json()["problems"][0]["line"] == 1


def test_unreadable_region_map_files_refused(world: World) -> None:
    h = world.h("owner")
    for data in (
        b"",
        b"   \n\n",
        "Leber=1\n".encode("utf-16"),
        b"Liver=1\n\xff\xfe\n",
        b"\x00\x01",
    ):
        r = world.client.put(world.file_url("maps", MAP), content=data, headers=h)
        assert r.status_code == 422, data
        assert MAP in _detail(r)
        assert r.json()["problems"]
    assert _listing(world) == {}


def test_model_without_region_map_is_404(world: World) -> None:
    world.client.put(
        world.file_url("maps", "readme.txt"), content=b"Liver=1", headers=world.h("owner")
    )
    r = world.client.get(world.model_url + "/region-map", headers=world.h("member"))
    assert r.status_code == 404
    assert MAP in _detail(r)


def test_same_map_in_two_folders_is_fine(world: World) -> None:
    h = world.h("owner")
    world.client.put(world.file_url("b-copy", MAP), content=GOOD_MAP, headers=h)
    world.client.put(world.file_url("a-main", MAP), content=GOOD_MAP, headers=h)
    r = world.client.get(world.model_url + "/region-map", headers=h)
    assert r.status_code == 200
    assert r.json()["source"]["sha256"] == _sha(GOOD_MAP)
    assert r.json()["source"]["folder"] in ("a-main", "b-copy")


def test_different_maps_in_two_folders_is_409(world: World) -> None:
    h = world.h("owner")
    world.client.put(world.file_url("v1", MAP), content=GOOD_MAP, headers=h)
    world.client.put(world.file_url("v2", MAP), content=b"Liver=1\n", headers=h)
    r = world.client.get(world.model_url + "/region-map", headers=h)
    assert r.status_code == 409
    assert "v1" in _detail(r) and "v2" in _detail(r)
    # Deleting one resolves it.
    world.client.delete(world.file_url("v1", MAP), headers=h)
    r = world.client.get(world.model_url + "/region-map", headers=h)
    assert r.json()["regions"] == [{"label": "Liver", "value": 1}]
