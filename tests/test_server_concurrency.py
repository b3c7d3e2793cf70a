"""Uploads racing each other and readers, over real HTTP (uvicorn), on both backends.

What must hold: a download is always one complete version (its bytes match the SHA-256
sent with it), the listing agrees with the stored bytes, a failed or abandoned upload
leaves nothing behind, and no stored object is orphaned.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from server_fixtures import ThreadedServer, World


TEST_MAX_UPLOAD = 3 * 1024 * 1024  # server_fixtures.TEST_MAX_UPLOAD


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _objects(world: World) -> list[bytes]:
    root = world.api.app.state.storage.objects
    return [p.read_bytes() for p in root.rglob("*") if p.is_file()]


def _staging(world: World) -> list[str]:
    return [p.name for p in world.api.app.state.storage.staging.iterdir()]


def _version(i: int, size: int = 256 * 1024) -> bytes:
    """A distinct payload per writer: a header naming it, then a byte pattern of its own."""
    head = f"version {i}\n".encode()
    return head + bytes([(i * 37 + k) % 251 for k in range(251)]) * ((size - len(head)) // 251)


def test_same_name_uploaded_by_many_at_once(world: World, threaded_server: ThreadedServer) -> None:
    url = threaded_server.url + world.file_url("race", "weights.bin")
    headers = world.h("owner")
    versions = [_version(i) for i in range(12)]
    barrier = threading.Barrier(len(versions))

    def upload(data: bytes) -> int:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            return c.put(url, content=data, headers=headers).status_code

    with ThreadPoolExecutor(len(versions)) as pool:
        statuses = list(pool.map(upload, versions))
    assert sorted(statuses) == [200] * (len(versions) - 1) + [201]
    final = httpx.get(url, headers=headers, timeout=60)
    assert final.content in versions
    [entry] = world.client.get(world.model_url + "/resources", headers=headers).json()[0]["files"]
    assert entry["sha256"] == _sha(final.content) == final.headers["x-content-sha256"]
    assert entry["size"] == len(final.content)
    assert _objects(world) == [final.content]
    assert _staging(world) == []


def test_downloads_during_replacement_are_never_torn(
    world: World, threaded_server: ThreadedServer
) -> None:
    url = threaded_server.url + world.file_url("live", "big.bin")
    headers = world.h("owner")
    a, b = _version(1, 1024 * 1024), _version(2, 1024 * 1024)
    assert httpx.put(url, content=a, headers=headers, timeout=60).status_code == 201
    stop = threading.Event()

    def writer() -> int:
        n = 0
        with httpx.Client(timeout=60) as c:
            while not stop.is_set() and n < 30:
                r = c.put(url, content=b if n % 2 == 0 else a, headers=headers)
                assert r.status_code == 200
                n += 1
        return n

    def reader() -> int:
        seen = 0
        with httpx.Client(timeout=60) as c:
            for _ in range(15):
                r = c.get(url, headers=world.h("collab"))
                assert r.status_code == 200
                assert r.content in (a, b)
                assert _sha(r.content) == r.headers["x-content-sha256"]
                seen += 1
        return seen

    with ThreadPoolExecutor(5) as pool:
        w = pool.submit(writer)
        readers = [pool.submit(reader) for _ in range(4)]
        assert sum(f.result() for f in readers) == 60
        stop.set()
        assert w.result() >= 1
    assert len(_objects(world)) == 1
    assert _staging(world) == []


def test_same_folder_created_by_many_at_once(world: World, threaded_server: ThreadedServer) -> None:
    url = threaded_server.url + world.model_url + "/resources/shared"
    barrier = threading.Barrier(8)

    def create(_: int) -> int:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            return c.put(url, headers=world.h("owner")).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(create, range(8)))
    assert statuses == [200] * 7 + [201]
    folders = world.client.get(world.model_url + "/resources", headers=world.h("owner")).json()
    assert [f["name"] for f in folders] == ["shared"]


def _wait_until(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_abandoned_upload_leaves_nothing(world: World, threaded_server: ThreadedServer) -> None:
    """The client promises 1 MB, sends 100 kB and hangs up."""
    path = world.file_url("f", "partial.bin")
    parts = urlsplit(threaded_server.url)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: {world.h('owner')['Authorization']}\r\n"
        "Content-Length: 1048576\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as s:
        s.sendall(head + b"\x07" * 100_000)
        # The upload is really under way: its staging file exists.
        assert _wait_until(lambda: len(_staging(world)) == 1)
    assert _wait_until(lambda: _staging(world) == [])
    r = world.client.get(world.model_url + "/resources", headers=world.h("owner"))
    assert r.json() == []
    assert _objects(world) == []


def test_streamed_upload_over_limit_over_http(
    world: World, threaded_server: ThreadedServer
) -> None:
    url = threaded_server.url + world.file_url("f", "huge.bin")

    def body() -> Iterator[bytes]:
        for _ in range(8):
            yield b"\x09" * (1024 * 1024)

    try:
        r = httpx.put(url, content=body(), headers=world.h("owner"), timeout=60)
    except httpx.TransportError:
        pass  # the server may answer 413 and close before the client has sent everything
    else:
        assert r.status_code == 413
    assert _wait_until(lambda: _staging(world) == [])
    assert world.client.get(world.model_url + "/resources", headers=world.h("owner")).json() == []
    assert _objects(world) == []
