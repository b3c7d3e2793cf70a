"""Drive a real ``segmap serve`` with concurrent clients and report throughput and latency.

Starts the service (uvicorn, in a subprocess, on 127.0.0.1 with a temporary data folder),
sets up a project, a model and a 1 MB file through the REST API, then runs CLIENTS
concurrent clients. Each client repeats ROUNDS times: list the project's models,
download the 1 MB file, upload a file of its own (a new name, or a replacement of its
previous one every other round). Every download is compared byte for byte with what was
uploaded; every upload's reported SHA-256 with the one computed here; at the end every
uploaded file is downloaded again and compared. Prints one table row per operation:
count, failures, operations per second, MB/s, p50 and p99 latency in milliseconds.
Exits 1 if any request failed or any byte differed.

    .venv/bin/python benchmarks/serve_bench.py [--clients 32] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# The ``segmap`` command line, run with this interpreter.
SEGMAP = [sys.executable, "-c", "import sys; from segmap.cli import main; sys.exit(main())"]
SERVE = [*SEGMAP, "serve"]
USERS = [*SEGMAP, "users", "create"]
PASSWORD = "bench-password"


@dataclass
class Stats:
    """Latencies (s), bytes moved and failures per operation."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    bytes_moved: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    mismatches: list[str] = field(default_factory=list)

    def ok(self, op: str, seconds: float, nbytes: int = 0) -> None:
        self.latencies[op].append(seconds)
        self.bytes_moved[op] += nbytes

    def fail(self, op: str, why: str) -> None:
        self.failures[op].append(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _payload(client: int, round_: int, size: int) -> bytes:
    """Distinct, reproducible bytes per client and round."""
    seed = hashlib.sha256(f"{client}:{round_}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def _client_loop(
    n: int,
    base: str,
    token: str,
    blob: bytes,
    args: argparse.Namespace,
    stats: Stats,
    deadline: float,
    uploaded: dict[str, bytes],
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    model_url = f"{base}/api/v1/projects/BENCH/models/bench-model"
    blob_sha = _sha(blob)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as c:
        for r in range(args.rounds):
            if time.monotonic() > deadline:
                return
            t = time.perf_counter()
            try:
                resp = await c.get(f"{base}/api/v1/projects/BENCH/models")
                if resp.status_code == 200 and resp.json()[0]["label"] == "bench-model":
                    stats.ok("list models", time.perf_counter() - t, len(resp.content))
                else:
                    stats.fail("list models", f"HTTP {resp.status_code}")
            except httpx.HTTPError as exc:
                stats.fail("list models", repr(exc))

            t = time.perf_counter()
            try:
                resp = await c.get(f"{model_url}/resources/data/files/blob.bin")
                if resp.status_code != 200:
                    stats.fail("download 1 MB", f"HTTP {resp.status_code}")
                else:
                    stats.ok("download 1 MB", time.perf_counter() - t, len(resp.content))
                    if resp.content != blob or resp.headers.get("x-content-sha256") != blob_sha:
                        stats.mismatches.append(f"client {n} round {r}: download differs")
            except httpx.HTTPError as exc:
                stats.fail("download 1 MB", repr(exc))

            # Even rounds upload a new name; odd rounds replace the previous one.
            name = f"c{n:02d}-r{r - (r % 2):03d}.bin"
            data = _payload(n, r, args.upload_kb * 1024)
            t = time.perf_counter()
            try:
                resp = await c.put(f"{model_url}/resources/uploads/files/{name}", content=data)
                expected = 201 if r % 2 == 0 else 200
                if resp.status_code != expected:
                    stats.fail("upload", f"HTTP {resp.status_code} (expected {expected})")
                else:
                    stats.ok("upload", time.perf_counter() - t, len(data))
                    uploaded[name] = data
                    if resp.json()["sha256"] != _sha(data):
                        stats.mismatches.append(f"upload {name}: server sha256 differs")
            except httpx.HTTPError as exc:
                stats.fail("upload", repr(exc))


async def _verify_uploads(base: str, token: str, uploaded: dict[str, bytes], stats: Stats) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    model_url = f"{base}/api/v1/projects/BENCH/models/bench-model"
    async with httpx.AsyncClient(headers=headers, timeout=120) as c:
        listing = (await c.get(f"{model_url}/resources")).json()
        files = {
            f["name"]: f
            for folder in listing
            if folder["name"] == "uploads"
            for f in folder["files"]
        }
        if set(files) != set(uploaded):
            stats.mismatches.append(
                f"listing has {len(files)} uploads, clients made {len(uploaded)}"
            )
        for name, data in uploaded.items():
            resp = await c.get(f"{model_url}/resources/uploads/files/{name}")
            if resp.content != data:
                stats.mismatches.append(f"{name}: stored bytes differ from the upload")
            entry = files.get(name)
            if entry is None or entry["sha256"] != _sha(data) or entry["size"] != len(data):
                stats.mismatches.append(f"{name}: listing size/sha256 differ")
    return len(uploaded)


def _setup(base: str, blob: bytes) -> str:
    with httpx.Client(timeout=60) as c:
        token = c.post(
            f"{base}/api/v1/auth/token", json={"username": "bench", "password": PASSWORD}
        ).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        c.post(f"{base}/api/v1/projects", json={"id": "BENCH", "name": "Benchmark"}, headers=h)
        c.post(
            f"{base}/api/v1/projects/BENCH/models",
            json={"label": "bench-model", "voxel_spacing": [1, 1, 1]},
            headers=h,
        ).raise_for_status()
        c.put(
            f"{base}/api/v1/projects/BENCH/models/bench-model/resources/data/files/blob.bin",
            content=blob,
            headers=h,
        ).raise_for_status()
        return str(token)


def _wait_for(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            httpx.get(base + "/docs", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not answer within {timeout_s} s")


def _table(stats: Stats, wall: float) -> str:
    rows = [
        f"{'operation':<15}{'count':>7}{'failed':>8}{'ops/s':>9}{'MB/s':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}"
    ]
    for op in ("list models", "download 1 MB", "upload"):
        lat = stats.latencies.get(op, [])
        rows.append(
            f"{op:<15}{len(lat):>7}{len(stats.failures.get(op, [])):>8}"
            f"{len(lat) / wall:>9.1f}{stats.bytes_moved.get(op, 0) / wall / 1e6:>9.2f}"
            f"{_percentile(lat, 50) * 1000:>9.1f}{_percentile(lat, 99) * 1000:>9.1f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 when nothing failed and every byte matched."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10, help="iterations per client")
    parser.add_argument("--upload-kb", type=int, default=256, help="size of each upload")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds, at most")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default SQLite)")
    args = parser.parse_args(argv)

    blob = os.urandom(1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="segmap-bench-") as tmp:
        data = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
        if args.database_url:
            env["SEGMAP_DATABASE_URL"] = args.database_url
        subprocess.run(
            [*USERS, "bench", "--data", str(data)],
            input=PASSWORD + "\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        port = _free_port()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(
            [*SERVE, "--data", str(data), "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(base, proc)
            token = _setup(base, blob)
            stats = Stats()
            uploaded: dict[str, bytes] = {}
            deadline = time.monotonic() + args.time_limit

            async def run_all() -> None:
                await asyncio.gather(
                    *(
                        _client_loop(n, base, token, blob, args, stats, deadline, uploaded)
                        for n in range(args.clients)
                    )
                )

            start = time.perf_counter()
            self_before = resource.getrusage(resource.RUSAGE_SELF)
            asyncio.run(run_all())
            wall = time.perf_counter() - start
            self_after = resource.getrusage(resource.RUSAGE_SELF)
            checked = asyncio.run(_verify_uploads(base, token, uploaded, stats))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)

    failures = sum(len(v) for v in stats.failures.values())
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"segmap serve benchmark: {args.clients} concurrent clients x {args.rounds} rounds, "
        f"{db}, uploads of {args.upload_kb} KiB, {os.cpu_count()} CPUs, {wall:.1f} s"
    )
    print(_table(stats, wall))
    print(
        f"CPU seconds: server {_cpu(children_after) - _cpu(children_before):.1f} "
        f"(whole run incl. start-up), clients {_cpu(self_after) - _cpu(self_before):.1f}"
    )
    print(f"failed requests: {failures}")
    print(
        f"byte checks: {sum(len(v) for k, v in stats.latencies.items() if k != 'list models')}"
        f" transfers + {checked} stored uploads re-read; mismatches: {len(stats.mismatches)}"
    )
    for op, whys in stats.failures.items():
        for why in whys[:5]:
            print(f"  {op}: {why}")
    for why in stats.mismatches[:10]:
        print(f"  mismatch: {why}")
    return 0 if failures == 0 and not stats.mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
