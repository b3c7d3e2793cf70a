"""What the real service tells browsers, and how it behaves at its edges (issue 9).

- every answer carries the anti-framing, nosniff and referrer headers, a 500 included;
  in Chromium another site cannot frame a segmap page while segmap itself may;
- ``/docs`` names no other host, its assets answer, and it renders with the network
  to every other host cut off;
- clients that drop the connection mid-download or mid-upload leave no traceback in
  the server's log;
- ``segmap serve --demo`` prints its URL only once the URL accepts connections.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from jobs_helpers import free_port
from segmap.server.app import create_app
from segmap.server.settings import Settings

if TYPE_CHECKING:
    from browser_fixtures import LiveServer

EXPECTED = {
    "content-security-policy": "frame-ancestors 'self'",
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _assert_browser_headers(answer: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert answer.headers.get(name) == value, (answer.request.url, name, answer.headers)


def test_every_kind_of_answer_carries_the_browser_headers(live_server: LiveServer) -> None:
    server = live_server
    server.create_model("headers-ct")
    assert server.upload("headers-ct", "map", "region2MaskValueMap.txt", b"Liver=1\n").is_success
    token = {"Authorization": f"Bearer {server.token('olivia')}"}
    model_file = "/api/v1/projects/LIVER01/models/headers-ct/resources/map/files/"
    answers = [
        httpx.get(server.url + "/login"),  # a page
        httpx.get(server.url + "/projects"),  # a redirect to log in
        httpx.get(server.url + "/projects/NOPE/sessions"),  # redirect (anonymous)
        httpx.get(server.url + "/api/v1/me"),  # 401 JSON
        httpx.get(server.url + "/api/v1/me", headers=token),  # 200 JSON
        httpx.get(server.url + "/api/v1/projects/NOPE", headers=token),  # 404 JSON
        httpx.get(server.url + "/no/such/page"),  # 404 page
        httpx.get(server.url + model_file + "region2MaskValueMap.txt", headers=token),  # file
        httpx.get(server.url + "/static/segmap.css"),  # static
        httpx.get(server.url + "/docs"),
        httpx.get(server.url + "/openapi.json"),
    ]
    assert [a.status_code for a in answers] == [200, 303, 303, 401, 200, 404, 404] + [200] * 4
    for answer in answers:
        _assert_browser_headers(answer)


def test_a_500_carries_the_browser_headers_too(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(Settings(data_dir=tmp_path / "data"))

    @app.get("/api/v1/broken-on-purpose")
    def broken() -> None:
        raise RuntimeError("a bug, on purpose")

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get("/api/v1/broken-on-purpose")
    finally:
        app.state.database.dispose()
    assert answer.status_code == 500
    _assert_browser_headers(answer)


@pytest.fixture()
def other_site(live_server: LiveServer) -> Iterator[str]:
    """Another web site (its own server and origin) whose page frames segmap's log-in."""
    page = f'<iframe id="f" src="{live_server.url}/login" onload="window.framed = true"></iframe>'

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        # "localhost", not 127.0.0.1: another host and port, so another origin.
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.mark.browser
def test_another_site_cannot_frame_segmap_but_segmap_can(
    page: Any, live_server: LiveServer, other_site: str
) -> None:
    server = live_server
    page.goto(other_site)
    # The frame's load event fires for a refused frame too (Chromium shows its error page).
    page.wait_for_function("() => window.framed === true")
    frame = next(f for f in page.frames if f != page.main_frame)
    assert not frame.url.startswith(server.url), frame.url
    assert page.frame_locator("#f").locator("#username").count() == 0

    page.goto(server.url + "/login")
    page.evaluate(
        """() => new Promise(done => {
            const f = document.createElement('iframe');
            f.id = 'self'; f.src = '/login'; f.onload = done;
            document.body.appendChild(f);
        })"""
    )
    assert page.frame_locator("#self").locator("#username").count() == 1


class _References(HTMLParser):
    """Every URL a page loads or links to (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_docs_name_no_other_host_and_their_assets_answer(live_server: LiveServer) -> None:
    answer = httpx.get(live_server.url + "/docs")
    assert answer.status_code == 200
    parser = _References()
    parser.feed(answer.text)
    # Script text may name URLs too (the OpenAPI document): look at quoted strings as well.
    quoted = re.findall(r"""['"]((?:https?:)?//[^'"]+)['"]""", answer.text)
    assert quoted == [], quoted
    assert parser.urls, "the docs page loads nothing?"
    for url in parser.urls:
        assert urlsplit(url).netloc == "" and url.startswith("/"), url
        asset = httpx.get(live_server.url + url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert len(asset.content) > 100, url
    kinds = {
        httpx.get(live_server.url + u).headers["content-type"].split(";")[0] for u in parser.urls
    }
    # nosniff: a script or stylesheet is only used when its media type says what it is.
    assert "text/css" in kinds and kinds & {"text/javascript", "application/javascript"}, kinds


@pytest.mark.browser
def test_docs_render_with_every_other_host_unreachable(page: Any, live_server: LiveServer) -> None:
    server = live_server
    elsewhere: list[str] = []

    def only_segmap(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_segmap)
    page.goto(server.url + "/docs")
    page.locator(".swagger-ui .info .title").wait_for(timeout=20_000)
    assert "segmap" in page.locator(".swagger-ui .info .title").inner_text()
    page.locator(".opblock-tag", has_text="sessions").first.wait_for()
    assert page.locator(".opblock").count() > 10
    assert elsewhere == []


# ------------------------------------------------------------------ client disconnects


def _raw_request(port: int, head: str, *, small_window: bool = False) -> socket.socket:
    s = socket.socket()
    if small_window:
        # A tiny receive window keeps most of the download in the server's hands.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(head.encode())
    return s


def _reset(s: socket.socket) -> None:
    """Close with a TCP reset, as a crashed client or a closed tab does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_clients_gone_mid_download_or_mid_upload_leave_no_traceback(
    live_server: LiveServer,
) -> None:
    server = live_server
    port = int(urlsplit(server.url).port or 0)
    token = server.token("olivia")
    server.create_model("drops-ct")
    big = bytes(range(256)) * (7 * 1024 * 1024 // 256)
    assert server.upload("drops-ct", "data", "big.bin", big).status_code == 201
    log = server.data_dir / "server.log"
    start = log.stat().st_size
    files = "/api/v1/projects/LIVER01/models/drops-ct/resources/data/files"
    auth = f"Host: x\r\nAuthorization: Bearer {token}\r\n"

    download = _raw_request(port, f"GET {files}/big.bin HTTP/1.1\r\n{auth}\r\n", small_window=True)
    assert download.recv(4096).startswith(b"HTTP/1.1 200")
    _reset(download)

    bodies = [
        ("PUT", f"{files}/partial.bin", "application/octet-stream", b""),
        ("POST", "/api/v1/projects/LIVER01/sessions", "application/zip", b""),
        (
            "POST",
            "/api/v1/projects/LIVER01/sessions",
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="a.dcm"\r\n\r\n',
        ),
    ]
    for method, path, kind, preamble in bodies:
        head = (
            f"{method} {path} HTTP/1.1\r\n{auth}Content-Type: {kind}\r\n"
            "Content-Length: 6000000\r\n\r\n"
        )
        upload = _raw_request(port, head)
        upload.sendall(preamble + b"\0" * 1_500_000)
        _reset(upload)

    # Each broken upload's staged bytes are discarded as its request ends: once staging is
    # empty and the server answers again, every dropped request has been handled.
    staging = Settings(data_dir=server.data_dir).storage_dir / "staging"
    # (Each process stages into a folder of its own, which stays while it runs: look
    # for files.)
    _wait_until(lambda: not any(p.is_file() for p in staging.rglob("*")))
    me = httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert set(server.folders("drops-ct")["data"]) == {"big.bin"}  # nothing half-stored
    logged = _logged_since(log, start)
    assert "Traceback" not in logged, logged
    assert "Exception in ASGI application" not in logged, logged


def _logged_since(log: Path, offset: int) -> str:
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def _wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# ------------------------------------------------------------------ the demo's URL


@pytest.fixture()
def demo_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segmap.cli",
            "serve",
            "--demo",
            "--data",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_demo_prints_its_url_once_the_url_accepts_connections(
    demo_process: subprocess.Popen[str],
) -> None:
    assert demo_process.stderr is not None
    seen: list[str] = []
    for line in demo_process.stderr:
        seen.append(line)
        found = re.search(r"serving (http://\S+)", line)
        if found:
            url = found.group(1)
            break
    else:
        pytest.fail(f"segmap serve --demo never printed its URL:\n{''.join(seen)}")
    # No retry, no wait: the line is the promise that this works now.
    answer = httpx.get(url + "login", timeout=5)
    assert answer.status_code == 200
    assert any("demo project" in line for line in seen), seen


def test_an_unknown_address_says_so_in_the_terms_of_who_asked(live_server: LiveServer) -> None:
    # A person gets a page naming the address; a program gets JSON pointing at the API docs.
    page = httpx.get(live_server.url + "/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at /no-such-page." in page.text and "/docs" not in page.text
    api = httpx.get(live_server.url + "/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.json()["detail"] == "there is no GET /api/v1/no-such-thing; see /docs for the API"
