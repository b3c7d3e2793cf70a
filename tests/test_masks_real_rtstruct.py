"""The rasteriser on a real RTSTRUCT written by a commercial planning system (MIM 7).

The grid and the contours are read here with pydicom alone; the truth is a vectorised
crossing-number test in LPS millimetres over every voxel centre of the slice, written for
this test. The contours at z = 70 mm reference a slice the series lacks (SOURCE.txt):
they must be skipped and counted while the rest of each ROI is kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from segmap.annotations.types import PlanarContour
from segmap.imaging.grid import VoxelGrid
from segmap.masks import rasterise_contours

# Per-slice voxel counts (z = 60, z = 65) that platipy 0.7.2 produced (SOURCE.txt). Its
# rasteriser rounds vertices to pixels, so it differs from the centre rule along edges.
PLATIPY_COUNTS = {
    "ROI-1": (3090, 2070),
    "ROI-2": (1493, 2380),
    "ROI-3": (2853, 1855),
    "ROI-4": (2593, 4702),
}


def grid_from_headers(folder: Path) -> VoxelGrid:
    """The CT's grid from its headers, slices sorted along the normal."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    headers.sort(key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)))
    positions = [np.asarray(h.ImagePositionPatient, dtype=float) for h in headers]
    dk = float(np.dot(positions[1] - positions[0], normal))
    dj, di = (float(x) for x in headers[0].PixelSpacing)
    return VoxelGrid.from_arrays(
        (int(headers[0].Columns), int(headers[0].Rows), len(headers)),
        (di, dj, dk),
        positions[0],
        np.stack([row_dir, col_dir, normal], axis=1),
    )


def read_rois(path: Path) -> dict[str, list[PlanarContour]]:
    ds = pydicom.dcmread(path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    rois = {}
    for rc in ds.ROIContourSequence:
        rois[names[int(rc.ReferencedROINumber)]] = [
            PlanarContour(
                np.asarray(c.ContourData, dtype=float).reshape(-1, 3), str(c.ContourGeometricType)
            )
            for c in rc.ContourSequence
        ]
    return rois


def crossing_truth(
    polys_xy: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Even-odd inside test by rays towards +x, and each point's distance to the edges."""
    inside = np.zeros(x.shape, dtype=bool)
    dist = np.full(x.shape, np.inf)
    for poly in polys_xy:
        for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
            straddles = (y0 > y) != (y1 > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            inside ^= straddles & (x < x_at)
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-300), 0, 1)
            dist = np.minimum(dist, np.hypot(x - x0 - t * dx, y - y0 - t * dy))
    return inside, dist


def test_mim_rtstruct_matches_crossing_number_and_skips_missing_slice(testdata: Path) -> None:
    folder = testdata / "rtutils-mim-rtstruct"
    grid = grid_from_headers(folder / "ct")
    assert grid.size == (512, 512, 2)
    rois = read_rois(folder / "rtstruct" / "dummy_rt_MIM.dcm")
    assert sorted(rois) == sorted(PLATIPY_COUNTS)

    ni, nj, _ = grid.size
    jj, ii = np.mgrid[0:nj, 0:ni]
    origin = np.asarray(grid.origin_lps)
    # Axial HFS: x grows with i, y with j (checked on the headers above by the grid).
    x = origin[0] + ii * grid.spacing[0]
    y = origin[1] + jj * grid.spacing[1]
    slice_z = [origin[2] + k * grid.spacing[2] for k in range(2)]

    for name, contours in rois.items():
        mask, stats = rasterise_contours(contours, grid)
        assert stats.contours_total == 3
        assert stats.skipped_off_plane == 1 and stats.used == 2 and stats.slices_touched == 2
        full = mask.to_full()
        for k, z in enumerate(slice_z):
            polys = [c.points_lps[:, :2] for c in contours if abs(c.points_lps[0, 2] - z) < 1e-3]
            assert len(polys) == 1
            # Outside the outline's bounding box nothing may be set; inside it, compare.
            lo, hi = polys[0].min(axis=0), polys[0].max(axis=0)
            near = (x >= lo[0] - 1) & (x <= hi[0] + 1) & (y >= lo[1] - 1) & (y <= hi[1] + 1)
            assert not full[k][~near].any()
            truth, dist = crossing_truth(polys, x[near], y[near])
            wrong = (full[k][near] != truth) & (dist > 1e-6)
            assert not wrong.any(), f"{name} slice {k}: {int(wrong.sum())} voxels differ"
            # Another tool with another boundary rule must still agree to within the
            # outline's length in pixels.
            perimeter_px = (
                float(np.sum(np.hypot(*np.diff(np.vstack([polys[0], polys[0][:1]]), axis=0).T)))
                / grid.spacing[0]
            )
            assert abs(int(full[k].sum()) - PLATIPY_COUNTS[name][k]) <= perimeter_px


@pytest.mark.parametrize("name", ["ROI-1", "ROI-4"])
def test_mim_contours_far_from_tolerance(testdata: Path, name: str) -> None:
    """A tighter tolerance changes nothing: MIM writes contours exactly on the slices."""
    folder = testdata / "rtutils-mim-rtstruct"
    grid = grid_from_headers(folder / "ct")
    contours = read_rois(folder / "rtstruct" / "dummy_rt_MIM.dcm")[name]
    loose, _ = rasterise_contours(contours, grid)
    tight, stats = rasterise_contours(contours, grid, plane_tolerance_mm=0.001)
    assert stats.used == 2
    assert np.array_equal(loose.to_full(), tight.to_full())
