"""Helpers for the batch and job tests: judge a mask against the independent truth.

The truth comes from ``test_convert_truth`` (its own even-odd test on the contours'
LPS vertices and on voxel centres from the DICOM headers), never from segmap's code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np

from segmap import testing as syn
from test_convert_truth import TruthROI, dicom_voxel_to_lps, truth_labels_ijk

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def truth_rois(case: syn.SyntheticCase, values: dict[str, int] | None = None) -> list[TruthROI]:
    """The case's ROIs with the values of ``values`` (default: the case's map), map order."""
    by_name = {r.name: r for r in case.rois}
    values = values if values is not None else case.region_values
    return [
        TruthROI(v, [c.points_lps for c in by_name[n].contours])
        for n, v in values.items()
        if n in by_name
    ]


def assert_mask_matches_truth(
    mask: Path | bytes,
    series_folder: Path,
    rois: list[TruthROI],
    tmp: Path | None = None,
) -> np.ndarray:
    """Assert a NIfTI mask equals the truth voxel for voxel; returns the mask ``[i, j, k]``.

    ``mask`` is a path or the bytes of a ``.nii.gz`` (then ``tmp`` is a folder to put
    them in). The mask's affine must place voxels where the DICOM headers say (to float32
    rounding); voxels whose centre lies within that rounding of a contour edge are not
    judged (fewer than 0.1 % of them).
    """
    if isinstance(mask, bytes):
        assert tmp is not None
        path = tmp / "downloaded_mask.nii.gz"
        path.write_bytes(mask)
        mask = path
    img = nib.load(str(mask))
    data = np.asarray(img.dataobj)
    dicom_lps, shape = dicom_voxel_to_lps(series_folder)
    assert data.shape == shape
    corners = np.array(
        [
            [i, j, k, 1.0]
            for i in (0, shape[0] - 1)
            for j in (0, shape[1] - 1)
            for k in (0, shape[2] - 1)
        ]
    )
    error = float(
        np.max(
            np.linalg.norm(
                ((LPS_FROM_RAS @ img.affine) @ corners.T - dicom_lps @ corners.T)[:3], axis=0
            )
        )
    )
    assert error < 1e-3, f"NIfTI voxels are {error} mm from where the DICOM puts them"
    truth, ambiguous = truth_labels_ijk(img.affine, shape, rois, edge_eps_mm=1e-6 + error)
    wrong = np.argwhere((data != truth) & ~ambiguous)
    assert wrong.size == 0, (
        f"{len(wrong)} voxels differ from the truth, e.g. (i,j,k)={wrong[:5].tolist()} "
        f"mask={data[tuple(wrong[0])]} truth={truth[tuple(wrong[0])]}"
    )
    assert ambiguous.sum() < 0.001 * data.size
    for roi in rois:
        assert (data == roi.value).any(), f"value {roi.value} is missing from the mask"
    return data


def small_case(
    root: Path, seed: int, *, size: tuple[int, int, int] = (48, 40, 8), patient: str | None = None
) -> syn.SyntheticCase:
    """A small phantom case (CT series in ``root/ct``, ``root/rtstruct.dcm``, ``map.txt``)."""
    grid = syn.axial_grid(size, (1.5, 1.5, 3.0))
    identity = syn.StudyIdentity.generate(seed, patient or f"PAT{seed:03d}")
    return syn.make_case(root, grid, seed=seed, identity=identity, noise_hu=0.0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Poll ``url`` until it answers (any status); fail if ``alive()`` turns False."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server process exited before answering at {url}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {timeout_s} s")


class Service:
    """``segmap serve`` in a subprocess on a data folder."""

    def __init__(
        self, data: Path, port: int, env: dict[str, str], extra_args: tuple[str, ...] = ()
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = data.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "segmap.cli",
                "serve",
                "--data",
                str(data),
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                *extra_args,
            ],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("SEGMAP_")}, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_http(self.url + "/api/v1/me", 60, alive=lambda: self.process.poll() is None)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def create_user(
    data: Path, name: str, password: str, database_url: str | None = None, admin: bool = False
) -> None:
    """``segmap users create NAME --data DATA [--admin]`` with the password on standard input."""
    extra = ["--database-url", database_url] if database_url else []
    extra += ["--admin"] if admin else []
    done = subprocess.run(
        [sys.executable, "-m", "segmap.cli", "users", "create", name, "--data", str(data), *extra],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
