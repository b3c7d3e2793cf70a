"""From an RTSTRUCT stored in Orthanc to its mask downloadable in segmap, on loopback.

Each round writes a phantom CT (512 x 512 x 300 by default, ``segmap.testing``), starts
a private Orthanc (``segmap.testing.orthanc``, Debian's ``orthanc`` + ``orthanc-dicomweb``)
and a fresh segmap service in this process (the real app, its job runner and archive
followers with their default timing: Orthanc's ``/changes`` every second), with project P
following Orthanc and model ``liver-ct`` automated. The CT is stored in Orthanc first;
then the clock starts as ``POST /instances`` of the RTSTRUCT returns, and stops when
``mask.nii.gz`` is downloaded. The table splits that time, read from the service's own
timestamps (see ``POLL_S``):

- detect + import: until the collection is stored in segmap and its job queued (the
  job's ``created_at``): the follower's wait for its next poll, fetching the RTSTRUCT and
  all the CT's instances from Orthanc, storing them as STOW-RS does;
- queue: from the job's creation to its start;
- conversion: the job itself (started_at to finished_at), which the goal leaves out;
- the rest: the mask's download, which can start at the job's end.

"Beyond the conversion" is the total less the conversion; the goal is under 5 s. The peer
line is the bare transfer of the same instance files out of Orthanc (sequential
``GET /instances/{id}/file``, uncompressed, what the import must at least do) and the
ratio of the import to it. Exits 1 when a check fails (the mask missing or holding no region).

    .venv/bin/python benchmarks/archive_bench.py [--size 512] [--slices 300] [--rounds 2]
        [--noise-hu 0] [--mode both|fetched|prefetched]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nibabel as nib
import numpy as np
from fastapi.testclient import TestClient

from segmap import testing as syn
from segmap.server.accounts.passwords import hash_password
from segmap.server.accounts.service import issue_token
from segmap.server.app import create_app
from segmap.server.archive.clients import FILE_HEADERS
from segmap.server.db.accounts import User
from segmap.server.settings import Settings
from segmap.server.web import auth
from segmap.testing.orthanc import OrthancServer, missing_parts


@dataclass
class Round:
    """The seconds of one round."""

    import_s: float
    queue_s: float
    conversion_s: float
    rest_s: float
    total_s: float
    peer_fetch_s: float

    @property
    def beyond_s(self) -> float:
        return self.total_s - self.conversion_s


POLL_S = 0.25
# How often the benchmark asks the service how far it got. The service runs in this
# process, so each request's Python work takes the GIL from the import it measures: at
# 20 ms (an earlier version) the polls of sessions and collections (~23 ms each) held it
# about half the time. The times are therefore read from the service's own timestamps
# (the collection's uploaded_at, the job's started_at and finished_at), and the polls are
# rare and cheap (one GET of the jobs).


def wait(what: str, probe: Any, timeout_s: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(POLL_S)
    raise SystemExit(f"timed out waiting for {what}")


def _seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def one_round(work: Path, case: syn.SyntheticCase, prefetch: bool) -> Round:
    settings = Settings(data_dir=work / "data", max_upload_bytes=64 * 1024 * 1024)
    app = create_app(settings)
    with app.state.database.session(write=True) as db:
        user = User(
            username="bench",
            username_key="bench",
            password_hash=hash_password("x" * 12),
            is_admin=False,
            is_active=True,
        )
        db.add(user)
        db.commit()
        token = issue_token(db, auth.principal_of(user, "token"))
    h = {"Authorization": f"Bearer {token}"}
    with OrthancServer(work / "orthanc", stable_age_s=2) as orthanc, TestClient(app) as c:
        assert (
            c.post("/api/v1/projects", json={"id": "P", "name": "P"}, headers=h).status_code == 201
        )
        r = c.post(
            "/api/v1/projects/P/models",
            headers=h,
            json={"label": "liver-ct", "voxel_spacing": [1.0, 1.0, 2.5], "automation": True},
        )
        assert r.status_code == 201, r.text
        text = "".join(f"{k}={v}\n" for k, v in syn.PHANTOM_REGION_VALUES.items())
        r = c.put(
            "/api/v1/projects/P/models/liver-ct/resources/maps/files/region2MaskValueMap.txt",
            content=text.encode(),
            headers=h,
        )
        assert r.status_code in (200, 201), r.text
        body = {"kind": "orthanc", "url": orthanc.url, "prefetch_images": prefetch}
        r = c.put("/api/v1/projects/P/archive", json=body, headers=h)
        assert r.status_code == 201, r.text
        ids = orthanc.store_files(list(case.series.files))
        if prefetch:  # the CT is imported once Orthanc calls it stable, before any annotation

            def scan_held() -> bool:
                sessions = c.get("/api/v1/projects/P/sessions", headers=h).json()
                return bool(sessions) and sessions[0]["scans"][0]["slice_count"] == len(ids)

            wait("the prefetched CT", scan_held)
        last = orthanc.get_json("/changes?last")["Last"]
        wait(
            "the follower to catch up",
            lambda: c.get("/api/v1/projects/P/archive", headers=h).json()["cursor"] == str(last),
        )

        orthanc.store_files([case.rtstruct_path])
        t0 = time.time()

        job = wait(
            "the job",
            lambda: (
                (j := c.get("/api/v1/projects/P/jobs", headers=h).json())
                and j[0]["state"] in ("succeeded", "failed")
                and j[0]
            ),
        )
        if job["state"] != "succeeded":
            raise SystemExit(f"the conversion failed: {job['error']}")
        # The mask is downloadable from the job's end on: the rest is its download.
        d0 = time.perf_counter()
        mask = c.get(f"{job['resources_url']}/liver-ct/files/mask.nii.gz", headers=h)
        download = time.perf_counter() - d0
        if mask.status_code != 200:
            raise SystemExit(f"mask.nii.gz: HTTP {mask.status_code}")
        data = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(mask.content)).dataobj)
        if not np.count_nonzero(data):
            raise SystemExit("the mask holds no region")
        # Queued by the automation once the collection is committed, with its DICOMweb
        # index entry (the collection's uploaded_at is set before that index is built).
        stored = _seconds(job["created_at"])
        started, finished = _seconds(job["started_at"]), _seconds(job["finished_at"])
        # The peer: the same files straight out of Orthanc, uncompressed as the import
        # asks for them (FILE_HEADERS).
        with httpx.Client(headers=FILE_HEADERS) as client:
            p0 = time.perf_counter()
            for i in ids:
                assert client.get(f"{orthanc.url}/instances/{i}/file").status_code == 200
            peer = time.perf_counter() - p0
    app.state.database.dispose()
    return Round(
        stored - t0,
        started - stored,
        finished - started,
        download,
        finished + download - t0,
        peer,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--noise-hu",
        type=float,
        default=0.0,
        help="noise of the phantom's pixels (HU, standard deviation): real CT has 10-20, "
        "and noisy pixels deflate slowly (an archive compressing what it sends pays it)",
    )
    parser.add_argument(
        "--mode",
        choices=("both", "fetched", "prefetched"),
        default="both",
        help="which mode(s) to run: one alone is handy under a profiler",
    )
    args = parser.parse_args()
    reason = missing_parts()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="segmap-archive-bench-") as tmp:
        root = Path(tmp)
        grid = syn.axial_grid((args.size, args.size, args.slices), (0.8, 0.8, 1.5))
        t = time.perf_counter()
        case = syn.make_case(
            root / "case",
            grid,
            seed=7,
            noise_hu=args.noise_hu,
            identity=syn.StudyIdentity.generate(7, "BENCH"),
        )
        print(
            f"wrote a {args.size} x {args.size} x {args.slices} CT in "
            f"{time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
        modes: dict[str, list[Round]] = {}
        if args.mode in ("both", "fetched"):
            modes["CT fetched with the annotation"] = [
                one_round(root / f"a{n}", case, prefetch=False) for n in range(args.rounds)
            ]
        if args.mode in ("both", "prefetched"):
            modes["CT prefetched (prefetch_images)"] = [
                one_round(root / f"b{n}", case, prefetch=True) for n in range(args.rounds)
            ]
    for mode, rounds in modes.items():
        print_table(f"{mode}: CT {args.size} x {args.size} x {args.slices}", rounds)
    return 0


def print_table(title: str, rounds: list[Round]) -> None:
    """The table of one mode, in seconds."""
    rows = [
        ("detect + import (RTSTRUCT; the CT unless held)", [r.import_s for r in rounds]),
        ("queue (job created -> started)", [r.queue_s for r in rounds]),
        ("conversion (the job itself)", [r.conversion_s for r in rounds]),
        ("job end -> mask downloaded", [r.rest_s for r in rounds]),
        ("total: stored in Orthanc -> mask downloaded", [r.total_s for r in rounds]),
        ("beyond the conversion (goal < 5 s)", [r.beyond_s for r in rounds]),
        ("peer: bare GET of every CT file from Orthanc", [r.peer_fetch_s for r in rounds]),
    ]
    print(f"\n{title}, {len(rounds)} round(s), seconds")
    print(f"{'step':<48} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in rows:
        print(f"{name:<48} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}")
    ratio = statistics.median(r.import_s for r in rounds) / statistics.median(
        r.peer_fetch_s for r in rounds
    )
    print(f"\nimport / bare transfer: {ratio:.1f} x (the import also detects, stores and indexes)")
    beyond = statistics.median(r.beyond_s for r in rounds)
    print(
        f"goal (< 5 s beyond the conversion): {'met' if beyond < 5 else 'NOT met'} ({beyond:.2f} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
