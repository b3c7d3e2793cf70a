"""Where a brush stroke painted, worked out from the stroke alone (no segmap code).

A stroke is what the browser test did with the mouse: the brush radius (mm), the slice it
was on, and the mouse positions along the drag mapped to LPS patient coordinates (mm) by
the viewport's own canvas-to-world transform. OHIF 3.13's brush (cornerstone's "Circle"
strategy in a stack viewport) paints the voxels of the slice on screen whose centres lie
within the radius of the polyline through those positions; nothing on other slices.

So a voxel centre at in-plane distance ``d`` from a stroke of radius ``r`` is painted
when ``d <= r``. Voxels with ``|d - r| <= tolerance`` are not judged: the mouse positions
are whole CSS pixels (0.12 mm each at the zoom the tests use), the NIfTI affine is float32,
and an RTSTRUCT export traces the painted voxels with contours that the conversion
rasterises again (see the tolerances in the tests that call this). Every stroke must
still leave voxels that are judged painted.

The strokes are saved beside the generated fixtures (``strokes.json``) so the fast tests
judge the fixtures with the same rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

from test_convert_truth import dicom_voxel_to_lps


@dataclass(frozen=True)
class Stroke:
    """One drag of the brush: which label, on which slice (0-based, in the viewer's stack
    order; informative only: the slice is found from the positions), the brush radius
    (mm), and the drag's positions (LPS, mm)."""

    label: str
    value: int
    slice_index: int
    radius_mm: float
    points_lps: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class Expectation:
    """What a mask must hold: ``labels[i, j, k]`` where judged, ``ambiguous`` where not."""

    labels: npt.NDArray[np.int32]
    ambiguous: npt.NDArray[np.bool_]


def voxel_centres_lps(affine_lps: npt.NDArray[np.float64], shape: tuple[int, ...]) -> np.ndarray:
    """LPS centres (mm) of every voxel ``[i, j, k]`` of a grid, as an array ``(ni, nj, nk, 3)``."""
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=float) for n in shape[:3]), indexing="ij")
    ijk1 = np.stack([ii, jj, kk, np.ones_like(ii)], axis=-1)
    return np.asarray((ijk1 @ affine_lps.T)[..., :3])


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance (mm) from each of ``points`` (N, 3) to the polyline through ``line`` (M, 3)."""
    best = np.linalg.norm(points - line[0], axis=1)
    for start, end in zip(line[:-1], line[1:], strict=True):
        vector = end - start
        length2 = float(vector @ vector)
        if length2 == 0.0:
            continue
        t = np.clip((points - start) @ vector / length2, 0.0, 1.0)
        nearest = start + t[:, None] * vector
        best = np.minimum(best, np.linalg.norm(points - nearest, axis=1))
    return best


def _slice_of(centres: np.ndarray, normal: np.ndarray, line: np.ndarray) -> int:
    """The slice ``k`` whose plane holds the stroke (the viewer draws on an image plane;
    a stroke off every plane of the grid means the viewer and the headers disagree)."""
    offsets = (line[None, :, :] - centres[0, 0, :, None, :]) @ normal  # (nk, points)
    k = int(np.argmin(np.abs(offsets).max(axis=1)))
    off = float(np.abs(offsets[k]).max())
    assert off < 0.01, f"the stroke lies {off:.3f} mm off the nearest slice plane"
    return k


def expected_labels(
    affine_lps: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    strokes: list[Stroke],
    tolerance_mm: float,
) -> Expectation:
    """The mask that ``strokes`` paint on a grid (voxel -> LPS ``affine_lps``, ``[i, j, k]``
    order, ``k`` the slice). Strokes of different labels must not come within
    ``2 * (radius + tolerance)`` of each other (asserted), so every voxel has one answer.
    Each stroke's slice is the grid plane its positions lie on."""
    centres = voxel_centres_lps(affine_lps, shape)
    labels = np.zeros(shape, dtype=np.int32)
    ambiguous = np.zeros(shape, dtype=bool)
    owner = np.full(shape, "", dtype=object)
    normal = affine_lps[:3, 2] / np.linalg.norm(affine_lps[:3, 2])
    for stroke in strokes:
        line = np.asarray(stroke.points_lps, dtype=float)
        k = _slice_of(centres, normal, line)
        plane = centres[:, :, k, :].reshape(-1, 3)
        d = _distance_to_polyline(plane, line)
        inside = (d <= stroke.radius_mm - tolerance_mm).reshape(shape[:2])
        near = (np.abs(d - stroke.radius_mm) <= tolerance_mm).reshape(shape[:2])
        clash = (inside | near) & (owner[:, :, k] != "") & (owner[:, :, k] != stroke.label)
        assert not clash.any(), f"strokes of two labels meet on slice {k}: move them apart"
        labels[:, :, k][inside] = stroke.value
        ambiguous[:, :, k] |= near
        owner[:, :, k][inside | near] = stroke.label
    ambiguous &= labels == 0  # well inside one stroke beats the edge band of another
    return Expectation(labels=labels, ambiguous=ambiguous)


def save_strokes(path: Path, strokes: list[Stroke], region_map: str) -> None:
    """Write the strokes and the region map text they were painted with (JSON)."""
    payload = {"region_map": region_map, "strokes": [asdict(s) for s in strokes]}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def load_strokes(path: Path) -> tuple[list[Stroke], str]:
    """The strokes and region map text written by :func:`save_strokes`."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    strokes = [
        Stroke(
            label=s["label"],
            value=int(s["value"]),
            slice_index=int(s["slice_index"]),
            radius_mm=float(s["radius_mm"]),
            points_lps=tuple(tuple(float(c) for c in p) for p in s["points_lps"]),
        )
        for s in payload["strokes"]
    ]
    return strokes, str(payload["region_map"])


def assert_painted(
    mask_nii: bytes, series_folder: Path, strokes: list[Stroke], tolerance_mm: float
) -> dict[int, int]:
    """Assert a NIfTI mask (uncompressed bytes) on the scan in ``series_folder`` holds each
    stroke's value where it painted and 0 everywhere else judged; returns the voxel count
    of each stroke value. The grid comes from the DICOM headers, not from segmap."""
    image = nib.Nifti1Image.from_bytes(mask_nii)
    data = np.asarray(image.dataobj)
    dicom_lps, shape = dicom_voxel_to_lps(series_folder)
    assert data.shape == shape
    nifti_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    assert np.allclose(nifti_lps, dicom_lps, atol=1e-3), "the mask is not on the scan's grid"
    expected = expected_labels(dicom_lps, shape, strokes, tolerance_mm)
    wrong = np.argwhere((data != expected.labels) & ~expected.ambiguous)
    assert wrong.size == 0, (
        f"{len(wrong)} voxels differ from where the brush went, e.g. (i,j,k)="
        f"{wrong[:5].tolist()}: mask {data[tuple(wrong[0])]}, "
        f"brush {expected.labels[tuple(wrong[0])]}"
    )
    counts = {s.value: int((data == s.value).sum()) for s in strokes}
    for value, count in counts.items():
        sure = int((expected.labels == value).sum())
        assert sure > 0 and count >= sure, (value, count, sure)
    return counts
