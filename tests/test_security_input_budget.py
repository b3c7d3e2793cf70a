"""The voxel budget (issue 9, point 3): a spacing too fine is refused with the size it
would have, at model creation (API and page), on the command line and in the pipeline
before it allocates anything -- never "internal error ... bug" or a machine out of memory.

The command line runs as users run it, in a subprocess; the service is the real app.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jobs_helpers import small_case
from segmap import testing as syn
from segmap.imaging.budget import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV
from server_fixtures import PASSWORD, World

SEGMAP = [sys.executable, "-m", "segmap.cli"]


def _segmap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    return subprocess.run(
        [*SEGMAP, *args], capture_output=True, text=True, timeout=300, env={**clean, **(env or {})}
    )


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> syn.SyntheticCase:
    """A 48 x 40 x 8 CT at 1.5 x 1.5 x 3 mm: a 72 x 60 x 24 mm box."""
    return small_case(tmp_path_factory.mktemp("budget"), 41)


def _convert(case: syn.SyntheticCase, out: Path, *extra: str, **env: str) -> Any:
    return _segmap(
        "convert",
        "--map",
        str(case.region_map_path),
        "--image",
        str(case.series.files[0].parent),
        "--rois",
        str(case.rtstruct_path),
        "--out",
        str(out),
        "--no-preview",
        *extra,
        env=env,
    )


# Runs the command line's main() in a fresh process and prints that process's own peak
# memory (VmHWM, KiB) as the last line of standard error. Not ru_maxrss: Linux carries the
# parent's high-water mark across fork and exec into it, so under a large pytest process
# it reports the parent's size, not the child's.
_PEAK_RSS = (
    "import sys\n"
    "from segmap.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read().splitlines()\n"
    "print(next(l.split()[1] for l in status if l.startswith('VmHWM:')), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _peak_rss_mib(*args: str) -> float:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean,
    )
    assert done.returncode == 1, done.stderr
    return int(done.stderr.strip().splitlines()[-1]) / 1024


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "spacing", ["1e-300", "0", "-1", "nan", "inf", "0.001", "1000", "1,1,0.009"]
)
def test_absurd_spacing_is_a_usage_error(
    case: syn.SyntheticCase, tmp_path: Path, spacing: str
) -> None:
    done = _convert(case, tmp_path / "out", "--spacing", spacing)
    assert done.returncode == 2, done.stderr
    assert "outside 0.01 to 100 mm" in done.stderr
    assert "bug" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_spacing_over_the_budget_is_refused_before_anything_is_allocated(
    case: syn.SyntheticCase, tmp_path: Path
) -> None:
    # 72 x 60 x 24 mm at 0.02 mm: 3600 x 3000 x 1200 = 12,960,000,000 voxels (26 GB of
    # int16 for the image alone).
    done = _convert(case, tmp_path / "out", "--spacing", "0.02")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "3600 x 3000 x 1200 = 12,960,000,000 voxels" in lines[0]
    assert "GiB" in lines[0] and f"{DEFAULT_MAX_VOXELS:,} voxels" in lines[0]
    assert MAX_VOXELS_ENV in lines[0] and "bug" not in lines[0]
    assert not (tmp_path / "out").exists()
    # Refused, not attempted: the process never held more than the inputs need.
    peak = _peak_rss_mib(
        "convert", "--map", str(case.region_map_path), "--image", str(case.series.files[0].parent),
        "--rois", str(case.rtstruct_path), "--out", str(tmp_path / "again"), "--spacing", "0.02",
    )  # fmt: skip
    assert peak < 400, f"{peak:.0f} MiB"


def test_the_budget_can_be_changed_and_a_fine_spacing_then_works(
    case: syn.SyntheticCase, tmp_path: Path
) -> None:
    # 72 x 60 x 24 mm at 0.5 mm is 144 x 120 x 48 = 829,440 voxels.
    small = _convert(case, tmp_path / "a", "--spacing", "0.5", **{MAX_VOXELS_ENV: "800000"})
    assert small.returncode == 1 and "829,440 voxels" in small.stderr, small.stderr
    ok = _convert(case, tmp_path / "b", "--spacing", "0.5", **{MAX_VOXELS_ENV: "900000"})
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "b" / "mask_resampled.nii.gz").is_file()
    bad = _convert(case, tmp_path / "c", "--spacing", "0.5", **{MAX_VOXELS_ENV: "lots"})
    assert bad.returncode == 1 and f"{MAX_VOXELS_ENV}='lots'" in bad.stderr, bad.stderr


def test_batch_reports_the_case_over_the_budget(case: syn.SyntheticCase, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _segmap(
        "batch",
        "--map",
        str(case.region_map_path),
        "--in",
        str(case.rtstruct_path.parent),
        "--out",
        str(out),
        "--spacing",
        "0.02",
        "--workers",
        "1",
        "--no-progress",
        "--no-preview",
    )
    assert done.returncode == 1, done.stderr
    report = json.loads((out / "batch_report.json").read_text())
    text = json.dumps(report)
    assert "12,960,000,000 voxels" in text and "bug" not in text
    assert "internal error" not in done.stdout + done.stderr


def test_batch_refuses_an_absurd_spacing(case: syn.SyntheticCase, tmp_path: Path) -> None:
    done = _segmap(
        "batch", "--map", str(case.region_map_path), "--in", str(tmp_path), "--out",
        str(tmp_path / "o"), "--spacing", "1e-300",
    )  # fmt: skip
    assert done.returncode == 2 and "0.01" in done.stderr, done.stderr


# ---------------------------------------------------------------- model creation


@pytest.mark.parametrize(
    "spacing",
    [
        [1e-300, 1e-300, 1e-300],  # was accepted; its jobs failed as "internal error ... bug"
        [0.05, 0.05, 0.05],  # was accepted; asked for GiB after GiB
        [0.3, 0.3, 0.3],  # 1667**3 voxels over a 500 mm field: over 2**30
        [0.2, 0.2, 0.4],
        [1, 1, 200],
        [1, 1, 0.001],
    ],
)
def test_model_creation_refuses_a_spacing_no_scan_could_use(
    world: World, spacing: list[float]
) -> None:
    r = world.client.post(
        "/api/v1/projects/P/models",
        json={"label": "fine", "voxel_spacing": spacing},
        headers=world.h("owner"),
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "voxel_spacing" in detail
    if min(spacing) >= 0.01 and max(spacing) <= 100:
        assert "500 mm field of view" in detail and "voxels" in detail and "GiB" in detail
    else:
        assert "0.01 to 100 mm" in detail
    models = world.client.get("/api/v1/projects/P/models", headers=world.h("owner")).json()
    assert [m["label"] for m in models] == ["liver-ct"]


def test_model_creation_refuses_nan_and_infinity(world: World) -> None:
    for raw in (b"[NaN, 1, 1]", b"[1, Infinity, 1]", b"[1, 1, 1e400]"):
        r = world.client.post(
            "/api/v1/projects/P/models",
            content=b'{"label": "odd", "voxel_spacing": ' + raw + b"}",
            headers={**world.h("owner"), "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (raw, r.text)


def test_model_creation_accepts_fine_but_feasible_spacings(world: World) -> None:
    r = world.client.post(
        "/api/v1/projects/P/models",
        json={"label": "half-mm", "voxel_spacing": [0.5, 0.5, 0.5]},  # 10**9 voxels at 500 mm
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text


def test_install_model_form_shows_the_budget_refusal(world: World) -> None:
    with TestClient(world.api.app) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
        assert token is not None
        r = browser.post(
            "/login", data={"username": "owner", "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert r.status_code == 200, r.text
        page = "/projects/P/machine-learning/dashboard"
        form = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(page).text)
        assert form is not None
        r = browser.post(
            "/projects/P/machine-learning/models",
            data={
                "csrf_token": form.group(1),
                "label": "tiny",
                "spacing_x": "0.05",
                "spacing_y": "0.05",
                "spacing_z": "0.05",
            },
            follow_redirects=False,
        )
    assert r.status_code == 422, r.text
    assert "500 mm field of view" in r.text and "GiB" in r.text
