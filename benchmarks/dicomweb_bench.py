"""segmap's DICOMweb side by side with Orthanc's, on the same CT, on loopback.

Writes one CT series (512 x 512 x 300 by default, uncompressed, ``segmap.testing``),
starts a real ``segmap serve`` (subprocess, temporary data folder, a bearer token) and a
private Orthanc with its DICOMweb plugin (``segmap.testing.orthanc``, Debian's
``orthanc`` + ``orthanc-dicomweb``, no authentication), and measures on each:

- STOW-RS: the whole series in requests of ``--batch`` instances; instances per second;
- study QIDO (``/studies?StudyInstanceUID=…``): latency p50/p99 over ``--repeats``
  (300 by default: p99 of fewer than 100 requests is only the slowest one);
- series metadata (``/studies/…/series/…/metadata``): latency p50/p99;
- frames: every frame of the series (``…/instances/{sop}/frames/1``), by 1 client and
  by 6 concurrent clients (as a viewer does); frames per second. Asked with
  ``Accept: multipart/related; type="application/octet-stream"; transfer-syntax=*``, since
  Orthanc's plugin answers 400 to a frames request whose Accept names no syntax.

The two archives take turns (batch by batch, request by request, round by round), so
both see the same load on a shared machine. Every answer is checked (status, result
counts, and each frame's bytes against the stored Pixel Data). Prints a table with the
ratios (> 1: segmap is better) and exits 1 if any check failed.

    .venv/bin/python benchmarks/dicomweb_bench.py [--slices 300] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pydicom

from segmap.testing import axial_grid, write_ct_series
from segmap.testing.orthanc import OrthancServer, free_port, missing_parts

SEGMAP = [sys.executable, "-c", "import sys; from segmap.cli import main; sys.exit(main())"]
PASSWORD = "bench-password"
FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@dataclass
class Target:
    """One archive under test: its DICOMweb root and the headers it needs."""

    name: str
    root: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Series:
    """The stored series: files in slice order, their UIDs and Pixel Data."""

    files: list[bytes]
    study: str
    series: str
    sops: list[str]
    pixels: dict[str, bytes]


@dataclass
class Result:
    """What was measured on one archive."""

    stow_per_s: float = 0.0
    qido: list[float] = field(default_factory=list)
    metadata: list[float] = field(default_factory=list)
    frames_per_s: dict[int, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def _write_series(folder: Path, size: int, slices: int) -> Series:
    grid = axial_grid((size, size, slices), (0.7, 0.7, 1.0))
    volume = np.random.default_rng(3).integers(-1000, 1500, grid.array_shape, dtype=np.int16)
    written = write_ct_series(folder, grid, volume, shuffle=False)
    files, sops, pixels = [], [], {}
    for path in written.files:
        data = path.read_bytes()
        ds = pydicom.dcmread(path)
        files.append(data)
        sops.append(str(ds.SOPInstanceUID))
        pixels[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return Series(
        files, written.identity.study_instance_uid, written.series_instance_uid, sops, pixels
    )


def _multipart(files: list[bytes], boundary: str) -> bytes:
    chunks = []
    for data in files:
        chunks += [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            data,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def _single_part(body: bytes) -> bytes:
    """The body of the only part of a multipart answer."""
    head_end = body.index(b"\r\n\r\n") + 4
    tail = body.rindex(b"\r\n--")
    return body[head_end:tail]


def _stow(targets: list[Target], series: Series, batch: int, results: dict[str, Result]) -> None:
    """Store the series in every target, batch by batch, the targets taking turns."""
    boundary = uuid.uuid4().hex
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    spent = dict.fromkeys((t.name for t in targets), 0.0)
    clients = {t.name: httpx.Client(headers=t.headers, timeout=600) for t in targets}
    try:
        for i in range(0, len(series.files), batch):
            body = _multipart(series.files[i : i + batch], boundary)
            for target in targets:
                start = time.perf_counter()
                r = clients[target.name].post(f"{target.root}/studies", content=body,
                                              headers={"Content-Type": content_type})  # fmt: skip
                spent[target.name] += time.perf_counter() - start
                if r.status_code != 200:
                    results[target.name].failures.append(
                        f"STOW: HTTP {r.status_code} {r.text[:200]}"
                    )
    finally:
        for client in clients.values():
            client.close()
    for target in targets:
        results[target.name].stow_per_s = len(series.files) / spent[target.name]


def _timed(client: httpx.Client, url: str, check: Callable[[httpx.Response], str | None],
           times: list[float], failures: list[str], **kw: object) -> None:  # fmt: skip
    start = time.perf_counter()
    r = client.get(url, **kw)  # type: ignore[arg-type]
    times.append(time.perf_counter() - start)
    problem = check(r)
    if problem:
        failures.append(f"{url}: {problem}")


def _queries(
    targets: list[Target], series: Series, repeats: int, results: dict[str, Result]
) -> None:
    """Study QIDO and series metadata, the targets taking turns request by request."""

    def one_study(r: httpx.Response) -> str | None:
        return None if r.status_code == 200 and len(r.json()) == 1 else f"HTTP {r.status_code}"

    def all_instances(r: httpx.Response) -> str | None:
        n = len(r.json()) if r.status_code == 200 else -1
        return None if n == len(series.sops) else f"HTTP {r.status_code}, {n} instances"

    clients = {t.name: httpx.Client(headers=t.headers, timeout=600) for t in targets}
    try:
        for _ in range(repeats):
            for t in targets:
                result = results[t.name]
                _timed(clients[t.name], f"{t.root}/studies", one_study, result.qido,
                       result.failures, params={"StudyInstanceUID": series.study})  # fmt: skip
        for _ in range(max(3, repeats // 5)):
            for t in targets:
                url = f"{t.root}/studies/{series.study}/series/{series.series}/metadata"
                result = results[t.name]
                _timed(clients[t.name], url, all_instances, result.metadata, result.failures)
    finally:
        for client in clients.values():
            client.close()


def _frames(target: Target, series: Series, clients: int, result: Result) -> None:
    base = f"{target.root}/studies/{series.study}/series/{series.series}/instances"
    share = [series.sops[i::clients] for i in range(clients)]

    def fetch(sops: list[str]) -> None:
        headers = {**target.headers, "Accept": FRAMES_ACCEPT}
        with httpx.Client(headers=headers, timeout=600) as client:
            for sop in sops:
                r = client.get(f"{base}/{sop}/frames/1")
                if r.status_code != 200:
                    result.failures.append(f"frame {sop}: HTTP {r.status_code} {r.text[:100]}")
                elif _single_part(r.content) != series.pixels[sop]:
                    result.failures.append(f"frame {sop}: bytes differ from the stored frame")

    threads = [threading.Thread(target=fetch, args=(s,)) for s in share]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.frames_per_s[clients] = len(series.sops) / (time.perf_counter() - start)


def _measure(targets: list[Target], series: Series, args: argparse.Namespace) -> dict[str, Result]:
    """Every measure on every target; the targets take turns, so both see the same load."""
    results = {t.name: Result() for t in targets}
    _stow(targets, series, args.batch, results)
    _queries(targets, series, args.repeats, results)
    for clients in (1, 6):
        for target in targets:
            _frames(target, series, clients, results[target.name])
    return results


def _start_segmap(data: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], Target]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    if database_url:
        env["SEGMAP_DATABASE_URL"] = database_url
    subprocess.run([*SEGMAP, "users", "create", "bench", "--data", str(data)],
                   input=PASSWORD + "\n", text=True, env=env, check=True,
                   capture_output=True)  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*SEGMAP, "serve", "--data", str(data), "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit("segmap serve exited during start-up")
        try:
            httpx.get(f"{base}/docs", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit("segmap serve did not answer within 60 s") from None
            time.sleep(0.1)
    login = {"username": "bench", "password": PASSWORD}
    token = httpx.post(f"{base}/api/v1/auth/token", json=login).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{base}/api/v1/projects", json={"id": "BENCH", "name": "Benchmark"},
                   headers=headers)  # fmt: skip
    r.raise_for_status()
    return proc, Target("segmap", f"{base}/dicomweb/projects/BENCH", headers)


def _table(results: dict[str, Result], series: Series) -> str:
    seg, orth = results["segmap"], results["Orthanc"]

    def ms(values: list[float], q: float) -> float:
        return _percentile(values, q) * 1e3

    rows: list[tuple[str, float, float, bool]] = [
        ("STOW instances/s", seg.stow_per_s, orth.stow_per_s, True),
        ("study QIDO p50 ms", ms(seg.qido, 50), ms(orth.qido, 50), False),
        ("study QIDO p99 ms", ms(seg.qido, 99), ms(orth.qido, 99), False),
        ("series metadata p50 ms", ms(seg.metadata, 50), ms(orth.metadata, 50), False),
        ("series metadata p99 ms", ms(seg.metadata, 99), ms(orth.metadata, 99), False),
        ("frames/s, 1 client", seg.frames_per_s[1], orth.frames_per_s[1], True),
        ("frames/s, 6 clients", seg.frames_per_s[6], orth.frames_per_s[6], True),
    ]
    lines = [f"{'measure':<24}{'segmap':>10}{'Orthanc':>10}{'ratio':>8}"]
    for name, s, o, higher_better in rows:
        ratio = (s / o) if higher_better else (o / s)
        lines.append(f"{name:<24}{s:>10.1f}{o:>10.1f}{ratio:>7.2f}x")
    lines.append("ratio > 1: segmap is better (throughput segmap/Orthanc, latency Orthanc/segmap)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 0 when every answer checked out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512, help="rows and columns per slice")
    parser.add_argument("--batch", type=int, default=25, help="instances per STOW request")
    parser.add_argument(
        "--repeats", type=int, default=300, help="QIDO requests per archive (metadata: a fifth)"
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default SQLite)")
    args = parser.parse_args(argv)
    problem = missing_parts()
    if problem:
        print(f"dicomweb_bench: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="segmap-dicomweb-bench-") as tmp:
        series = _write_series(Path(tmp) / "ct", args.size, args.slices)
        proc, segmap_target = _start_segmap(Path(tmp) / "data", args.database_url)
        try:
            with OrthancServer(workdir=Path(tmp) / "orthanc") as orthanc:
                orthanc_target = Target("Orthanc", orthanc.dicomweb_url)
                results = _measure([segmap_target, orthanc_target], series, args)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    size_mb = sum(len(f) for f in series.files) / 1e6
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"DICOMweb benchmark: CT {args.size}x{args.size}x{args.slices} uncompressed "
          f"({size_mb:.0f} MB), segmap on {db}, {os.cpu_count()} CPUs, loopback")  # fmt: skip
    print(_table(results, series))
    failures = [f"{name}: {f}" for name, r in results.items() for f in r.failures]
    print(f"failed checks: {len(failures)}")
    for line in failures[:10]:
        print(f"  {line}")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
