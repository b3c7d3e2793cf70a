"""Independent truth for conversion tests, and tests of that truth itself.

Nothing here imports segmap's geometry, rasteriser or painter: the truth of a mask is
computed from the contours' LPS vertices and from voxel centres given by a NIfTI affine,
with a plain even-odd (crossing number) point-in-polygon test written for these tests.
Other test modules import :func:`truth_labels_ijk` and :func:`dicom_voxel_to_lps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class TruthROI:
    """A region as the test knows it: the value it must get and its contours (LPS mm)."""

    value: int
    contours: Sequence[np.ndarray]


def _plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    return e1, e2


def _polygon_normal(points: np.ndarray) -> np.ndarray:
    """Newell's method: the unit normal of a planar polygon of any shape."""
    p = points
    q = np.roll(points, -1, axis=0)
    n = np.array(
        [
            np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
            np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
            np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1])),
        ]
    )
    return n / np.linalg.norm(n)


def even_odd_inside(poly2d: np.ndarray, pts2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crossing-number test of points against one polygon, and each point's edge distance.

    Returns ``(inside, distance)``: ``inside`` counts crossings of a ray from the point
    towards +x; ``distance`` is the smallest distance from the point to any edge (mm).
    """
    x, y = pts2d[:, 0], pts2d[:, 1]
    inside = np.zeros(len(pts2d), dtype=bool)
    dist = np.full(len(pts2d), np.inf)
    a = poly2d
    b = np.roll(poly2d, -1, axis=0)
    for (x0, y0), (x1, y1) in zip(a, b, strict=True):
        straddles = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (x < x_cross)
        ex, ey = x1 - x0, y1 - y0
        length2 = ex * ex + ey * ey
        t = np.clip(((x - x0) * ex + (y - y0) * ey) / length2, 0.0, 1.0) if length2 else 0.0
        dist = np.minimum(dist, np.hypot(x - (x0 + t * ex), y - (y0 + t * ey)))
    return inside, dist


def voxel_centres_lps(affine_ras: np.ndarray, shape_ijk: tuple[int, int, int]) -> np.ndarray:
    """LPS mm of every voxel centre, shape ``(ni, nj, nk, 3)``, from a NIfTI (RAS) affine."""
    a = LPS_FROM_RAS @ np.asarray(affine_ras, dtype=float)
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=float) for n in shape_ijk), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1)
    return ijk @ a[:3, :3].T + a[:3, 3]


def truth_labels_ijk(
    affine_ras: np.ndarray,
    shape_ijk: tuple[int, int, int],
    rois_in_paint_order: Sequence[TruthROI],
    *,
    edge_eps_mm: float = 1e-6,
    plane_tol_mm: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """The composite label volume ``[i, j, k]`` and a mask of voxels too close to call.

    Each ROI's contours are assigned to the voxel slices whose centres lie within
    ``plane_tol_mm`` of the contour's plane; on a slice, a centre is in the ROI when it is
    inside an odd number of the ROI's contours there. Later ROIs overwrite earlier ones.
    A voxel whose centre is within ``edge_eps_mm`` of any contour edge on its slice is
    marked ambiguous.
    """
    centres = voxel_centres_lps(affine_ras, shape_ijk)
    labels = np.zeros(shape_ijk, dtype=np.int64)
    ambiguous = np.zeros(shape_ijk, dtype=bool)
    nk = shape_ijk[2]
    for roi in rois_in_paint_order:
        region = np.zeros(shape_ijk, dtype=bool)
        for contour in roi.contours:
            pts = np.asarray(contour, dtype=float)
            n = _polygon_normal(pts)
            d = float(np.mean(pts @ n))
            e1, e2 = _plane_basis(n)
            poly = np.stack([pts @ e1, pts @ e2], axis=1)
            for k in range(nk):
                # Offsets along n are linear over a slice: if its four corners lie beyond
                # the tolerance on one side, so does every voxel centre of the slice.
                corner_off = centres[[0, 0, -1, -1], [0, -1, 0, -1], k, :] @ n - d
                if np.all(corner_off > plane_tol_mm) or np.all(corner_off < -plane_tol_mm):
                    continue
                c = centres[:, :, k, :].reshape(-1, 3)
                off = c @ n - d
                on_plane = np.abs(off) < plane_tol_mm
                if not on_plane.any():
                    continue
                inside, dist = even_odd_inside(poly, np.stack([c @ e1, c @ e2], axis=1))
                inside &= on_plane
                near = (dist < edge_eps_mm) & on_plane
                region[:, :, k] ^= inside.reshape(shape_ijk[:2])
                ambiguous[:, :, k] |= near.reshape(shape_ijk[:2])
        labels[region] = roi.value
    return labels, ambiguous


def dicom_voxel_to_lps(series_folder: Path) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The voxel->LPS affine of a single-frame series read straight from its headers.

    Slices are sorted along ``row x column``; ``k`` follows that order. Returns the 4x4
    affine and ``(ni, nj, nk)``.
    """
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(series_folder.iterdir())]
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    headers.sort(key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)))
    positions = np.array([np.asarray(h.ImagePositionPatient, float) for h in headers])
    dj, di = (float(x) for x in headers[0].PixelSpacing)
    a = np.eye(4)
    a[:3, 0] = row * di
    a[:3, 1] = col * dj
    if len(headers) > 1:
        a[:3, 2] = (positions[-1] - positions[0]) / (len(headers) - 1)
    else:
        a[:3, 2] = normal * float(headers[0].SliceThickness)
    a[:3, 3] = positions[0]
    return a, (int(headers[0].Columns), int(headers[0].Rows), len(headers))


# --- tests of the truth itself ---------------------------------------------------------


def test_even_odd_square_with_hole_and_edges():
    outer = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    inner = np.array([[1, 1], [3, 1], [3, 3], [1, 3]], dtype=float)
    pts = np.array([[0.5, 0.5], [2, 2], [3.5, 2], [5, 2], [4, 2], [-1, -1]], dtype=float)
    in_o, d_o = even_odd_inside(outer, pts)
    in_i, d_i = even_odd_inside(inner, pts)
    inside = in_o ^ in_i
    assert inside[:4].tolist() == [True, False, True, False]
    assert inside[5] == False  # noqa: E712
    assert min(d_o[4], d_i[4]) == 0.0  # on the edge: ambiguous, not judged


def test_even_odd_concave_polygon_against_hand_count():
    # An "L": 3x3 square minus its top-right 2x2 quarter; integer points hand-counted.
    poly = np.array([[0, 0], [3, 0], [3, 1], [1, 1], [1, 3], [0, 3]], dtype=float) - 0.25
    xs, ys = np.meshgrid(np.arange(0, 4), np.arange(0, 4))
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    inside, _ = even_odd_inside(poly, pts)
    # inside: (0,0),(1,0),(2,0),(0,1),(0,2) -> 5 points
    assert sorted(map(tuple, pts[inside].astype(int).tolist())) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (2, 0),
    ]


def test_circle_area_converges_to_pi_r2():
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = 20.0
    circle = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    xs, ys = np.meshgrid(np.arange(-25, 25.0, 0.25), np.arange(-25, 25.0, 0.25))
    inside, _ = even_odd_inside(circle, np.stack([xs.ravel(), ys.ravel()], axis=1))
    area = inside.sum() * 0.25**2
    assert abs(area - np.pi * r * r) / (np.pi * r * r) < 0.005


def test_truth_on_oblique_plane_matches_in_plane_construction():
    # A square contour on an oblique plane through a grid whose k-axis is that plane's
    # normal: the voxels inside are exactly those whose in-plane offsets are inside.
    rot = np.linalg.qr(np.array([[0.9, 0.2, 0.3], [-0.3, 0.8, 0.1], [0.1, -0.4, 0.9]]))[0]
    lps = np.eye(4)
    lps[:3, :3] = rot * np.array([1.0, 1.5, 2.0])
    lps[:3, 3] = [10.0, -20.0, 5.0]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    corners = np.array([[2.5, 2.5], [7.5, 2.5], [7.5, 6.5], [2.5, 6.5]])  # in voxel units
    k = 1
    pts = np.array([lps[:3, :3] @ [c[0], c[1], k] + lps[:3, 3] for c in corners])
    labels, amb = truth_labels_ijk(ras, (10, 8, 3), [TruthROI(7, [pts])])
    expected = np.zeros((10, 8, 3), dtype=np.int64)
    expected[3:8, 3:7, 1] = 7
    assert not amb.any()
    assert np.array_equal(labels, expected)
