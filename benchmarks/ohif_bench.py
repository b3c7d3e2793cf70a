"""OHIF in headless Chromium: the same study served by segmap and by Orthanc.

Writes one CT series (512 x 512 x 300 by default, ``segmap.testing``'s phantom, uncompressed)
and stores it in two archives on this machine:

- **segmap**: a real ``segmap serve`` (subprocess, temporary data folder, SQLite unless
  ``--database-url``), the study stored by STOW-RS into project ``BENCH``; the viewer is
  segmap's own ``/ohif/`` with its generated ``app-config.js``, logged in with the cookie.
- **Orthanc**: a private Orthanc with its DICOMweb plugin (``segmap.testing.orthanc``,
  default plugin settings, no authentication), the study stored with ``POST /instances``;
  the viewer is the **same installed dist** served by a small static server in this
  process (uvicorn + Starlette, as segmap serves it: same files, cache rules and SPA
  fallback) with an ``app-config.js`` made by segmap's own ``viewer.app_config`` for one
  data source rooted at Orthanc's ``/dicom-web`` (same settings but the root). Orthanc
  sends no CORS headers, so the browser runs with ``--disable-web-security`` for both.

Each round opens the segmentation mode on the study (``/ohif/segmentation/<source>?
StudyInstanceUIDs=…``, the link segmap's pages give) in a fresh browser profile (empty
cache) and measures, from the start of that navigation (the page's time origin):

- **first image**: the first animation frame in which a viewport canvas
  (``canvas.cornerstone-canvas``) holds a non-black pixel in its centre, read back with
  ``getImageData``;
- **all slices**: the ``responseEnd`` of the last of the series' ``…/frames/N`` requests
  (Resource Timing), once one per instance has completed; each is also checked to have
  answered 200.

Chromium: ``/usr/bin/chromium`` with ``--enable-unsafe-swiftshader --use-angle=swiftshader``
(WebGL on the CPU; no ``--disable-gpu``, which would turn WebGL off). The archives take
turns round by round (order alternating), so both see the same load on a shared machine.
Prints the medians, their ratio (> 1: segmap is faster) and a per-kind breakdown of the
requests (count, median and total time), and exits 1 if a check failed.

    .venv/bin/python benchmarks/ohif_bench.py [--size 512] [--slices 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pydicom
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from segmap.server.viewer.app_config import ProjectSource, app_config_js
from segmap.server.viewer.dist import BASE_PATH, REVALIDATE, OhifDist, cache_control, find_dist
from segmap.server.viewer.links import viewer_study_url
from segmap.testing import axial_grid, render_phantom_ct, write_ct_series
from segmap.testing.orthanc import OrthancServer, free_port, missing_parts

SEGMAP = [sys.executable, "-c", "import sys; from segmap.cli import main; sys.exit(main())"]
PASSWORD = "bench-password"
PROJECT = "BENCH"
ORTHANC_SOURCE = "orthanc"
CHROMIUM = Path(os.environ.get("SEGMAP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-web-security",  # Orthanc answers no CORS preflight; same flag for both
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 860}

# Runs before OHIF's own scripts: keep every resource timing, and watch the viewport
# canvases each animation frame until one shows a non-black pixel in its centre.
WATCH = """
performance.setResourceTimingBufferSize(1000000);
(function watch() {
  for (const canvas of document.querySelectorAll('canvas.cornerstone-canvas')) {
    if (canvas.width < 8 || canvas.height < 8) continue;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) continue;
    const w = Math.min(32, canvas.width), h = Math.min(32, canvas.height);
    const px = ctx.getImageData((canvas.width - w) >> 1, (canvas.height - h) >> 1, w, h).data;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i] + px[i + 1] + px[i + 2] > 0) { window.__firstImage = performance.now(); return; }
    }
  }
  requestAnimationFrame(watch);
})();
"""
FRAMES_DONE = """n => performance.getEntriesByType('resource')
  .filter(e => e.name.includes('/frames/') && e.responseEnd > 0).length >= n"""
ENTRIES = """() => performance.getEntriesByType('resource').map(e => ({
  name: e.name, start: e.startTime, end: e.responseEnd, status: e.responseStatus || 0 }))"""


@dataclass
class Target:
    """One archive and the viewer on it."""

    name: str
    viewer_url: str
    login: tuple[str, str] | None  # (log-in page URL, username) when cookies are needed


@dataclass
class Round:
    """What one opening of the viewer took, in ms from the navigation's start."""

    first_image_ms: float
    all_slices_ms: float
    requests: list[dict[str, Any]]


@dataclass
class Results:
    """Every round of one target, and the checks that failed."""

    rounds: list[Round] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- data and archives


def write_study(folder: Path, size: int, slices: int) -> list[Path]:
    """The phantom CT, ``size`` x ``size`` x ``slices`` (0.7 x 0.7 x 1 mm voxels)."""
    grid = axial_grid((size, size, slices), (0.7, 0.7, 1.0))
    written = write_ct_series(folder, grid, render_phantom_ct(grid), shuffle=False)
    return list(written.files)


def _wait_for(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited during start-up")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not answer within 60 s") from None
            time.sleep(0.1)  # poll until it listens; bounded by the deadline


@contextmanager
def segmap_serving(data: Path, files: list[Path], database_url: str | None) -> Iterator[str]:
    """``segmap serve`` with user ``bench`` and project BENCH holding ``files``; its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    if database_url:
        env["SEGMAP_DATABASE_URL"] = database_url
    subprocess.run([*SEGMAP, "users", "create", "bench", "--data", str(data)],
                   input=PASSWORD + "\n", text=True, env=env, check=True,
                   capture_output=True)  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*SEGMAP, "serve", "--data", str(data), "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/login", proc, "segmap serve")
        login = {"username": "bench", "password": PASSWORD}
        token = httpx.post(f"{base}/api/v1/auth/token", json=login).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.post(f"{base}/api/v1/projects", json={"id": PROJECT, "name": "Benchmark"},
                       headers=headers)  # fmt: skip
        r.raise_for_status()
        _stow(f"{base}/dicomweb/projects/{PROJECT}/studies", headers, files)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stow(url: str, headers: dict[str, str], files: list[Path], batch: int = 25) -> None:
    boundary = uuid.uuid4().hex
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    with httpx.Client(headers=headers, timeout=600) as client:
        for i in range(0, len(files), batch):
            chunks = []
            for path in files[i : i + batch]:
                chunks += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                           path.read_bytes(), b"\r\n"]  # fmt: skip
            chunks.append(f"--{boundary}--\r\n".encode())
            r = client.post(url, content=b"".join(chunks), headers={"Content-Type": content_type})
            if r.status_code != 200:
                raise SystemExit(f"STOW into segmap failed: HTTP {r.status_code} {r.text[:300]}")


def viewer_app(dist: OhifDist, config_js: str) -> Starlette:
    """The dist at ``/ohif/`` with ``config_js`` as its ``app-config.js``: the files with
    segmap's cache rules, any other path without an extension ``index.html``."""

    def config(_request: Request) -> Response:
        return Response(config_js, media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    def files(request: Request) -> Response:
        path = request.path_params["path"]
        found = dist.file(path)
        if found is not None:
            return FileResponse(found, headers={"Cache-Control": cache_control(found)})
        if "." in path.rsplit("/", 1)[-1]:
            return Response("not found", status_code=404)
        return FileResponse(dist.index_html, media_type="text/html",
                            headers={"Cache-Control": REVALIDATE})  # fmt: skip

    return Starlette(routes=[Route(f"{BASE_PATH}app-config.js", config),
                             Route(BASE_PATH + "{path:path}", files)])  # fmt: skip


@contextmanager
def static_viewer(dist: OhifDist, orthanc_root: str) -> Iterator[str]:
    """The dist served for Orthanc (see the module) in a thread; its base URL."""
    source = ProjectSource(ORTHANC_SOURCE, "Orthanc", orthanc_root)
    app = viewer_app(dist, app_config_js([source], [], "bench"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the static viewer server did not start")
        time.sleep(0.02)  # until uvicorn listens; bounded by the deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


# ---------------------------------------------------------------- the browser side


def _log_in(context: Any, url: str, username: str) -> None:
    page = context.new_page()
    page.goto(url)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/projects")
    page.close()


def open_viewer(browser: Any, target: Target, frames: int, results: Results) -> None:
    """One round on ``target`` in a fresh profile (see the module for what is timed)."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        if target.login is not None:
            _log_in(context, *target.login)
        context.add_init_script(WATCH)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Time to the first byte of each answer (request sent -> response started), from
        # the browser's network stack: the server's share of a request.
        waits: dict[str, float] = {}

        def finished(request: Any) -> None:
            timing = request.timing
            if timing["requestStart"] >= 0 and timing["responseStart"] >= 0:
                waits[request.url] = timing["responseStart"] - timing["requestStart"]

        page.on("requestfinished", finished)
        page.goto(target.viewer_url, wait_until="commit")
        page.wait_for_function("window.__firstImage !== undefined", timeout=600_000,
                               polling=100)  # fmt: skip
        page.wait_for_function(FRAMES_DONE, arg=frames, timeout=600_000, polling=100)
        first = float(page.evaluate("window.__firstImage"))
        entries: list[dict[str, Any]] = page.evaluate(ENTRIES)
        for entry in entries:
            entry["wait"] = waits.get(entry["name"], -1.0)
    finally:
        context.close()
    frame_entries = [e for e in entries if "/frames/" in e["name"]]
    bad = [e for e in frame_entries if e["status"] not in (0, 200)]
    if bad:
        results.failures.append(f"{len(bad)} frame request(s) failed, e.g. {bad[0]}")
    if len({e["name"] for e in frame_entries}) < frames:
        results.failures.append(f"fewer than {frames} distinct frames were fetched")
    if errors:
        results.failures.append(f"JavaScript errors: {errors[:3]}")
    last = max(e["end"] for e in frame_entries)
    results.rounds.append(Round(first, last, entries))


def _kind(url: str) -> str:
    path = urlsplit(url).path
    if "/frames/" in path:
        return "frames"
    if path.endswith("/metadata"):
        return "series metadata"
    if path.endswith("/series"):
        return "series QIDO"
    if path.endswith("/studies") or "/studies?" in url:
        return "study QIDO"
    if path.startswith(BASE_PATH):
        return "viewer files"
    return "other"


# ---------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(results: dict[str, Results]) -> str:
    """Medians per target, the ratio, and where the time went."""
    seg, orth = results["segmap"], results["Orthanc"]
    rows = [
        ("first image, ms", [r.first_image_ms for r in seg.rounds],
         [r.first_image_ms for r in orth.rounds]),
        ("all slices, ms", [r.all_slices_ms for r in seg.rounds],
         [r.all_slices_ms for r in orth.rounds]),
    ]  # fmt: skip
    lines = [f"{'measure (median)':<22}{'segmap':>10}{'Orthanc':>10}{'ratio':>8}"]
    for name, s, o in rows:
        ms, mo = _median(s), _median(o)
        lines.append(f"{name:<22}{ms:>10.0f}{mo:>10.0f}{mo / ms:>7.2f}x")
    lines.append("ratio = Orthanc / segmap: > 1 means segmap is faster")
    lines.append("")
    lines.append(f"{'requests (last round)':<22}{'':>4}{'n':>5}{'median ms':>11}{'wait ms':>9}"
                 f"{'sum ms':>9}")  # fmt: skip
    for name, result in results.items():
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in result.rounds[-1].requests:
            by_kind[_kind(e["name"])].append(e)
        for kind in sorted(by_kind):
            spans = [e["end"] - e["start"] for e in by_kind[kind]]
            waits = [e["wait"] for e in by_kind[kind] if e["wait"] >= 0]
            lines.append(f"{name + ' ' + kind:<26}{len(spans):>5}{_median(spans):>11.1f}"
                         f"{_median(waits):>9.1f}{sum(spans):>9.0f}")  # fmt: skip
    return "\n".join(lines)


def timeline(results: dict[str, Results]) -> str:
    """Each request of each target's last round: start and end (ms), kind, path."""
    lines = []
    for name, result in results.items():
        last = result.rounds[-1]
        lines.append(f"{name}: first image {last.first_image_ms:.0f} ms")
        for e in sorted(last.requests, key=lambda e: e["start"]):
            path = urlsplit(e["name"]).path
            lines.append(f"  {e['start']:8.0f} {e['end']:8.0f} {_kind(e['name']):<16} "
                         f"{e['status']:>3} {path[-70:]}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 0 when every check held."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="rows and columns per slice")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="openings per archive")
    parser.add_argument("--warmup", type=int, default=1,
                        help="uncounted openings per archive first (disk caches, JIT)")  # fmt: skip
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default SQLite)")
    parser.add_argument("--timeline", action="store_true",
                        help="also print every request of each target's last round")  # fmt: skip
    args = parser.parse_args(argv)
    problem = missing_parts()
    dist = find_dist()
    if problem is None and dist is None:
        problem = "the OHIF dist is not installed: run .venv/bin/python scripts/install-ohif.py"
    if problem is None and not CHROMIUM.is_file():
        problem = f"{CHROMIUM} not found: install the Debian package 'chromium'"
    if problem is not None or dist is None:
        print(f"ohif_bench: {problem}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="segmap-ohif-bench-") as tmp:
        files = write_study(Path(tmp) / "ct", args.size, args.slices)
        study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        with (
            segmap_serving(Path(tmp) / "data", files, args.database_url) as segmap_url,
            OrthancServer(workdir=Path(tmp) / "orthanc") as orthanc,
        ):
            for path in files:
                orthanc.store_instance(path.read_bytes())
            with static_viewer(dist, orthanc.dicomweb_url) as static_url:
                targets = [
                    Target("segmap", segmap_url + viewer_study_url(PROJECT, study),
                           (f"{segmap_url}/login", "bench")),
                    Target("Orthanc", static_url + viewer_study_url(ORTHANC_SOURCE, study), None),
                ]  # fmt: skip
                results = {t.name: Results() for t in targets}
                warmups = {t.name: Results() for t in targets}
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                    )
                    try:
                        for n in range(args.warmup + args.rounds):
                            kept = results if n >= args.warmup else warmups
                            for target in targets if n % 2 == 0 else targets[::-1]:
                                open_viewer(browser, target, len(files), kept[target.name])
                    finally:
                        browser.close()
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"OHIF benchmark: CT {args.size}x{args.size}x{args.slices} uncompressed "
          f"({size_mb:.0f} MB), segmentation mode, {args.rounds} rounds each, segmap on {db}, "
          f"{os.cpu_count()} CPUs, loopback, Chromium + SwiftShader")  # fmt: skip
    print(table(results))
    if args.timeline:
        print(timeline(results))
    failures = [
        f"{name}: {f}"
        for kept in (warmups, results)
        for name, r in kept.items()
        for f in r.failures
    ]
    print(f"failed checks: {len(failures)}")
    for line in failures[:10]:
        print(f"  {line}")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
