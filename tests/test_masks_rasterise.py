"""Contour rasterisation checked against truths computed without the code under test.

Shapes are drawn in millimetres in a 2-D basis ``(u, v)`` of a slice plane (turned by an
arbitrary angle against the grid's rows and columns) and placed in LPS. The truth for
every voxel comes from the voxel centre's own LPS position projected onto that basis and
tested either analytically (half-planes of convex polygons, unions and differences of
them) or with a crossing-number point-in-polygon test written here, a different
algorithm from the scanline filler. Voxel centres within 1e-6 mm of an edge are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmap.annotations.types import PlanarContour
from segmap.imaging.grid import VoxelGrid
from segmap.masks.rasterise import RasterStats, default_plane_tolerance_mm, rasterise_contours

EDGE_EPS_MM = 1e-6
Polygon = np.ndarray  # (N, 2) vertices in plane millimetres (u, v)

# --- grids -------------------------------------------------------------------------


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from three angles in radians (x then y then z)."""
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


AXIAL_HFS = np.eye(3)
# Feet first supine: rows run to patient right, slices sorted towards the feet.
AXIAL_FFS = np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]])
# Left-handed voxel axes: columns to the left, rows to anterior, slices to the head.
AXIAL_FLIPPED = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
OBLIQUE = rotation(0.35, -0.6, 1.1)
SAGITTAL_LIKE = np.array([[0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]]) @ rotation(0.0, 0.0, 0.2)


def make_grid(size, spacing, origin, direction) -> VoxelGrid:
    return VoxelGrid.from_arrays(size, spacing, origin, direction)


def centre_lps(grid: VoxelGrid, i: float, j: float, k: float) -> np.ndarray:
    """LPS of a voxel centre written out from the DICOM definition (not via the grid)."""
    d = np.asarray(grid.direction, dtype=float)
    di, dj, dk = grid.spacing
    return np.asarray(grid.origin_lps) + i * di * d[:, 0] + j * dj * d[:, 1] + k * dk * d[:, 2]


@dataclass
class Plane:
    """A slice plane with an in-plane basis turned by ``angle`` against the grid rows."""

    grid: VoxelGrid
    k: int
    angle: float = 0.0
    centre_ij: tuple[float, float] = (0.0, 0.0)

    @property
    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = np.asarray(self.grid.direction, dtype=float)
        c, s = math.cos(self.angle), math.sin(self.angle)
        eu = c * d[:, 0] + s * d[:, 1]
        ev = -s * d[:, 0] + c * d[:, 1]
        return eu, ev, d[:, 2]

    @property
    def anchor(self) -> np.ndarray:
        return centre_lps(self.grid, self.centre_ij[0], self.centre_ij[1], self.k)

    def to_lps(self, poly: Polygon, normal_offset_mm: float = 0.0) -> np.ndarray:
        eu, ev, en = self.basis
        poly = np.asarray(poly, dtype=float)
        return self.anchor[None, :] + poly[:, :1] * eu + poly[:, 1:2] * ev + normal_offset_mm * en

    def voxel_uv(self) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) in mm of every voxel centre of slice ``k``, arrays shaped ``[j, i]``."""
        ni, nj, _ = self.grid.size
        eu, ev, _ = self.basis
        out_u = np.empty((nj, ni))
        out_v = np.empty((nj, ni))
        for j in range(nj):
            for i in range(ni):
                p = centre_lps(self.grid, i, j, self.k) - self.anchor
                out_u[j, i] = p @ eu
                out_v[j, i] = p @ ev
        return out_u, out_v


# --- independent truths ------------------------------------------------------------


def crossing_number_inside(u: float, v: float, polygons: Sequence[Polygon]) -> bool:
    """Even-odd point-in-polygon by counting edges crossed by a ray towards +u."""
    inside = False
    for poly in polygons:
        n = len(poly)
        for a in range(n):
            x0, y0 = poly[a]
            x1, y1 = poly[(a + 1) % n]
            if (y0 > v) != (y1 > v):
                x_at = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
                if u < x_at:
                    inside = not inside
    return inside


def crossing_number_inside_all(
    u: np.ndarray, v: np.ndarray, polygons: Sequence[Polygon]
) -> np.ndarray:
    """The crossing-number test at every point of the ``[j, i]`` arrays ``u``, ``v``."""
    return np.array(
        [
            [crossing_number_inside(a, b, polygons) for a, b in zip(ru, rv, strict=True)]
            for ru, rv in zip(u, v, strict=True)
        ]
    )


def near_edge(u: np.ndarray, v: np.ndarray, polygons: Sequence[Polygon]) -> np.ndarray:
    """True where a point lies within EDGE_EPS_MM of any polygon edge (any array shape)."""
    near = np.zeros(np.shape(u), dtype=bool)
    for poly in polygons:
        p = np.asarray(poly, dtype=float)
        q = np.roll(p, -1, axis=0)
        for (x0, y0), (x1, y1) in zip(p, q, strict=True):
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = np.zeros_like(u) if length2 == 0 else ((u - x0) * dx + (v - y0) * dy) / length2
            t = np.clip(t, 0.0, 1.0)
            dist = np.hypot(u - (x0 + t * dx), v - (y0 + t * dy))
            near |= dist < EDGE_EPS_MM
    return near


def unexplained(
    got: np.ndarray, truth: np.ndarray, u: np.ndarray, v: np.ndarray, polygons: Sequence[Polygon]
) -> np.ndarray:
    """Indices ``[j, i]`` where ``got`` and ``truth`` differ at a centre not on an edge."""
    differ = np.argwhere(got != truth)
    if len(differ) == 0:
        return differ
    on_edge = near_edge(u[differ[:, 0], differ[:, 1]], v[differ[:, 0], differ[:, 1]], polygons)
    return differ[~on_edge]


def inside_convex(u: np.ndarray, v: np.ndarray, poly: Polygon) -> np.ndarray:
    """Analytic inside test for a convex polygon: on the inner side of every edge line."""
    p = np.asarray(poly, dtype=float)
    q = np.roll(p, -1, axis=0)
    area2 = np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1])
    sign = 1.0 if area2 > 0 else -1.0
    ok = np.ones(u.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(p, q, strict=True):
        ok &= sign * ((x1 - x0) * (v - y0) - (y1 - y0) * (u - x0)) > 0
    return ok


def rect(u0: float, v0: float, u1: float, v1: float) -> Polygon:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=float)


def ellipse(
    a: float, b: float, n: int = 72, cu: float = 0.0, cv: float = 0.0, phase: float = 0.1
) -> Polygon:
    t = phase + np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cu + a * np.cos(t), cv + b * np.sin(t)], axis=1)


def star(r_out: float, r_in: float, points: int = 7, cu: float = 0.0, cv: float = 0.0) -> Polygon:
    t = np.linspace(0.0, 2 * np.pi, 2 * points, endpoint=False) + 0.05
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([cu + r * np.cos(t), cv + r * np.sin(t)], axis=1)


def l_shape(u0: float, v0: float, long: float, short: float, arm: float) -> Polygon:
    return np.array(
        [
            [u0, v0],
            [u0 + long, v0],
            [u0 + long, v0 + arm],
            [u0 + arm, v0 + arm],
            [u0 + arm, v0 + short],
            [u0, v0 + short],
        ],
        dtype=float,
    )


# --- running a case ----------------------------------------------------------------


def scrambled(polys_lps: list[np.ndarray], rng: np.random.Generator) -> list[PlanarContour]:
    """Contours in random order, random orientation, random first vertex."""
    out = []
    for pts in polys_lps:
        if rng.random() < 0.5:
            pts = pts[::-1]
        pts = np.roll(pts, int(rng.integers(len(pts))), axis=0)
        out.append(PlanarContour(np.ascontiguousarray(pts)))
    order = rng.permutation(len(out))
    return [out[n] for n in order]


AnalyticTruth = Callable[[np.ndarray, np.ndarray], np.ndarray]


def check_case(
    grid: VoxelGrid,
    shapes: dict[int, list[Polygon]],
    *,
    angle: float = 0.0,
    centre_ij: tuple[float, float] = (0.0, 0.0),
    analytic: dict[int, AnalyticTruth] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, RasterStats]:
    """Rasterise ``shapes`` (slice -> polygons in plane mm) and compare every voxel."""
    rng = np.random.default_rng(seed)
    lps: list[np.ndarray] = []
    for k, polys in shapes.items():
        plane = Plane(grid, k, angle, centre_ij)
        lps.extend(plane.to_lps(p) for p in polys)
    mask, stats = rasterise_contours(scrambled(lps, rng), grid)
    got = mask.to_full()
    assert got.shape == grid.array_shape

    for k in range(grid.size[2]):
        if k not in shapes:
            assert not got[k].any(), f"slice {k} has no contour but got voxels"
    for k, polys in shapes.items():
        u, v = Plane(grid, k, angle, centre_ij).voxel_uv()
        truth = crossing_number_inside_all(u, v, polys)
        assert truth.any(), "test shape covers no voxel centre"
        if analytic and k in analytic:
            # The two truths must agree with each other before they judge the code.
            assert len(unexplained(analytic[k](u, v), truth, u, v, polys)) == 0
        bad = unexplained(got[k], truth, u, v, polys)
        assert len(bad) == 0, f"slice {k}: {len(bad)} voxels differ, first [j,i]={bad[0]}"
    return got, stats


# --- shapes on many geometries -----------------------------------------------------

GEOMETRIES = {
    "axial-hfs": make_grid((40, 36, 4), (0.9, 0.9, 2.5), (-18.0, -16.0, 30.0), AXIAL_HFS),
    "axial-ffs": make_grid((40, 36, 4), (0.9, 0.9, 2.5), (17.0, -16.0, -30.0), AXIAL_FFS),
    "flipped": make_grid((40, 36, 4), (0.9, 0.9, 2.5), (-18.0, 15.0, 3.0), AXIAL_FLIPPED),
    "nonsquare": make_grid((46, 30, 3), (0.7, 1.3, 3.0), (-15.0, -19.0, 7.5), AXIAL_HFS),
    "oblique-nonsquare": make_grid((44, 34, 3), (0.8, 1.1, 2.0), (12.3, -40.1, 88.8), OBLIQUE),
    "sagittal-like": make_grid((36, 40, 3), (1.2, 0.75, 1.5), (5.0, 6.0, 7.0), SAGITTAL_LIKE),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_convex_ellipse_matches_half_planes(name: str) -> None:
    grid = GEOMETRIES[name]
    centre = ((grid.size[0] - 1) / 2 + 0.37, (grid.size[1] - 1) / 2 - 0.21)
    poly = ellipse(12.0, 8.5, n=80)
    check_case(
        grid,
        {1: [poly]},
        angle=0.4,
        centre_ij=centre,
        analytic={1: lambda u, v: inside_convex(u, v, poly)},
    )


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_concave_shapes_and_disjoint_contours(name: str) -> None:
    grid = GEOMETRIES[name]
    centre = ((grid.size[0] - 1) / 2, (grid.size[1] - 1) / 2)
    st_ = star(11.0, 4.3, points=6, cu=-3.0, cv=1.0)
    ell = l_shape(-14.0, -12.5, 12.0, 9.0, 3.3)
    sq = rect(7.1, -12.2, 12.4, -6.05)
    # The L is the union of two rectangles sharing its corner at (-14, -12.5).
    arm_u, arm_v = rect(-14.0, -12.5, -2.0, -9.2), rect(-14.0, -12.5, -10.7, -3.5)

    def truth0(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return inside_convex(u, v, arm_u) | inside_convex(u, v, arm_v) | inside_convex(u, v, sq)

    got, stats = check_case(
        grid, {0: [ell, sq], 2: [st_]}, angle=-0.3, centre_ij=centre, analytic={0: truth0}
    )
    assert stats.used == 3 and stats.slices_touched == 2 and stats.skipped == 0
    others = [k for k in range(grid.size[2]) if k not in (0, 2)]
    assert not got[others].any()


@pytest.mark.parametrize("name", ["axial-hfs", "oblique-nonsquare", "axial-ffs"])
def test_inner_contour_is_a_hole(name: str) -> None:
    grid = GEOMETRIES[name]
    centre = ((grid.size[0] - 1) / 2 + 0.5, (grid.size[1] - 1) / 2 + 0.25)
    outer = ellipse(13.0, 11.0, n=64)
    inner = ellipse(6.0, 4.0, n=40, cu=1.5, cv=-0.7, phase=0.3)
    got, _ = check_case(
        grid,
        {1: [outer, inner]},
        angle=0.9,
        centre_ij=centre,
        analytic={1: lambda u, v: inside_convex(u, v, outer) & ~inside_convex(u, v, inner)},
        seed=3,
    )
    # The hole is really there: the centre voxel of the annulus is empty.
    u, v = Plane(grid, 1, 0.9, centre).voxel_uv()
    j, i = np.unravel_index(np.argmin(np.hypot(u - 1.5, v + 0.7)), u.shape)
    assert not got[1, j, i]


def test_overlapping_contours_cancel_where_they_overlap() -> None:
    grid = GEOMETRIES["nonsquare"]
    a = rect(-10.1, -8.3, 4.2, 5.5)
    b = rect(-3.7, -2.9, 9.9, 11.2)
    check_case(
        grid,
        {1: [a, b]},
        centre_ij=(22.0, 14.0),
        analytic={1: lambda u, v: inside_convex(u, v, a) ^ inside_convex(u, v, b)},
        seed=5,
    )


def test_partly_outside_the_image_is_clipped_not_dropped() -> None:
    grid = GEOMETRIES["oblique-nonsquare"]
    # Centred on the first voxel: three quarters of the disc lie outside the image.
    disc = ellipse(9.0, 9.0, n=60)
    far_square = rect(100.0, 100.0, 120.0, 120.0)
    got, stats = check_case(
        grid,
        {0: [disc], 2: [ellipse(40.0, 6.0, n=50)]},
        centre_ij=(0.0, 0.0),
        seed=7,
        analytic={0: lambda u, v: inside_convex(u, v, disc)},
    )
    assert got[0].any() and got[2].any()
    assert stats.clipped == 2 and stats.used == 2
    plane = Plane(grid, 1)
    mask, stats = rasterise_contours([PlanarContour(plane.to_lps(far_square))], grid)
    assert mask.voxel_count == 0 and stats.used == 1 and stats.clipped == 1


def test_contour_larger_than_the_image_fills_the_whole_slice() -> None:
    # Runs off all four sides: every voxel of slice 1 is inside, nothing else.
    grid = GEOMETRIES["oblique-nonsquare"]
    huge = rect(-500.0, -400.0, 450.0, 380.0)
    plane = Plane(grid, 1, angle=0.3)
    mask, stats = rasterise_contours([PlanarContour(plane.to_lps(huge))], grid)
    assert stats.clipped == 1
    assert mask.offset_kji == (1, 0, 0) and mask.data.shape == (1, 34, 44)
    assert mask.data.all() and mask.data.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("seed", range(4))
def test_random_order_and_orientation_do_not_matter(seed: int) -> None:
    grid = GEOMETRIES["axial-ffs"]
    shapes = {
        0: [star(9.0, 3.0, 5, 2.0, 1.0), rect(-16.0, -14.0, -10.0, -9.0)],
        1: [ellipse(14.0, 12.0), ellipse(5.0, 5.0, cu=2.0)],
        3: [l_shape(-8.0, -8.0, 15.0, 13.0, 4.1)],
    }
    got, stats = check_case(grid, shapes, angle=0.2 * seed, centre_ij=(20.0, 18.0), seed=seed)
    assert stats.used == 5 and stats.slices_touched == 3


def test_sub_voxel_vertices_are_not_rounded() -> None:
    # A square whose sides sit 0.1 voxel either side of voxel centres: rounding vertices to
    # the voxel grid would move each side onto a centre or past it.
    grid = make_grid((12, 12, 1), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), AXIAL_HFS)
    sq = np.array([[2.9, 2.9], [7.1, 2.9], [7.1, 6.9], [2.9, 6.9]])
    mask, _ = rasterise_contours([PlanarContour(np.c_[sq, np.zeros(4)])], grid)
    # Columns 3..7 (5 of them) and rows 3..6 (4 of them).
    assert mask.voxel_count == 20
    assert mask.offset_kji == (0, 3, 3) and mask.data.shape == (1, 4, 5)
    # Shifted by 0.2 voxel to [3.1, 7.3] x [3.1, 7.1]: columns 4..7 and rows 4..7.
    mask, _ = rasterise_contours([PlanarContour(np.c_[sq + [0.2, 0.2], np.zeros(4)])], grid)
    assert mask.voxel_count == 16 and mask.offset_kji == (0, 4, 4)


def test_tiny_contour_between_centres_paints_nothing() -> None:
    grid = make_grid((8, 8, 1), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), AXIAL_HFS)
    tri = np.array([[3.2, 3.2, 0.0], [3.8, 3.3, 0.0], [3.5, 3.9, 0.0]])
    mask, stats = rasterise_contours([PlanarContour(tri)], grid)
    assert mask.voxel_count == 0 and stats.used == 1


# --- slice assignment and skipped contours -----------------------------------------

SLICED = make_grid((20, 20, 5), (1.0, 1.0, 2.0), (0.0, 0.0, -4.0), AXIAL_HFS)


def square_at_z(z: float, gtype: str = "CLOSED_PLANAR", tilt: float = 0.0) -> PlanarContour:
    pts = np.array([[4.5, 4.5, z], [10.5, 4.5, z + tilt], [10.5, 8.5, z + tilt], [4.5, 8.5, z]])
    return PlanarContour(pts, geometric_type=gtype)


def test_contour_slightly_off_plane_goes_to_nearest_slice() -> None:
    # Slice k sits at z = -4 + 2k; z = 2.004 is 0.004 mm from slice 3.
    mask, stats = rasterise_contours([square_at_z(2.004), square_at_z(-4.0 - 0.01)], SLICED)
    full = mask.to_full()
    assert full[3].sum() == 6 * 4 and full[0].sum() == 6 * 4
    assert not full[[1, 2, 4]].any()
    assert stats.used == 2 and stats.slices_touched == 2 and stats.skipped == 0


def test_contour_halfway_between_planes_is_skipped_and_counted() -> None:
    contours = [square_at_z(1.0), square_at_z(2.0), square_at_z(-5.0), square_at_z(6.0)]
    mask, stats = rasterise_contours(contours, SLICED)
    # 1.0 is halfway between slices 2 and 3; -5 and 6 are a half slice beyond the ends.
    assert stats.skipped_off_plane == 3 and stats.used == 1
    assert mask.to_full()[3].sum() == 24 and mask.voxel_count == 24


def test_contour_beyond_the_last_slice_is_off_plane() -> None:
    # One whole slice beyond the last plane: like a contour on a slice the series lacks.
    _, stats = rasterise_contours([square_at_z(6.0 + 2.0), square_at_z(-4.0)], SLICED)
    assert stats.skipped_off_plane == 1 and stats.used == 1


def test_tolerance_default_and_override() -> None:
    assert default_plane_tolerance_mm(2.0) == pytest.approx(0.5)
    assert default_plane_tolerance_mm(1.0) == pytest.approx(0.25)
    assert default_plane_tolerance_mm(5.0) == pytest.approx(0.5)
    c = square_at_z(2.3)  # 0.3 mm from slice 3
    assert rasterise_contours([c], SLICED)[1].used == 1
    _, stats = rasterise_contours([c], SLICED, plane_tolerance_mm=0.2)
    assert stats.used == 0 and stats.skipped_off_plane == 1
    with pytest.raises(ValueError, match="half the slice spacing"):
        rasterise_contours([c], SLICED, plane_tolerance_mm=1.0)


def test_tilted_contour_is_non_planar() -> None:
    _, stats = rasterise_contours([square_at_z(2.0, tilt=0.8), square_at_z(2.0, tilt=0.3)], SLICED)
    assert stats.skipped_non_planar == 1 and stats.used == 1


def test_open_contours_and_points_are_skipped_and_counted() -> None:
    contours = [
        square_at_z(0.0, "OPEN_PLANAR"),
        square_at_z(0.0, "OPEN_NONPLANAR"),
        PlanarContour(np.array([[5.0, 5.0, 0.0]]), geometric_type="POINT"),
        PlanarContour(np.array([[5.0, 5.0, 0.0], [6.0, 5.0, 0.0]])),
        PlanarContour(np.array([[5.0, 5.0, 0.0], [9.0, 5.0, 0.0], [np.nan, 8.0, 0.0]])),
        square_at_z(0.0, "CLOSEDPLANAR_XOR"),
        square_at_z(0.0),
    ]
    mask, stats = rasterise_contours(contours, SLICED)
    assert stats == RasterStats(
        contours_total=7,
        used=2,
        skipped_off_plane=0,
        skipped_open=2,
        skipped_point=3,
        skipped_non_planar=0,
        clipped=0,
        slices_touched=1,
        plane_tolerance_mm=0.5,
    )
    # The two identical closed squares cancel under the even-odd rule.
    assert mask.voxel_count == 0
    assert stats.skipped == 5


def test_no_contours_gives_an_empty_mask() -> None:
    mask, stats = rasterise_contours([], SLICED)
    assert mask.voxel_count == 0 and mask.grid_shape == SLICED.array_shape
    assert stats.contours_total == 0 and stats.used == 0


def test_mask_box_is_tight() -> None:
    mask, _ = rasterise_contours([square_at_z(0.0), square_at_z(4.0)], SLICED)
    assert mask.offset_kji == (2, 5, 5) and mask.data.shape == (3, 4, 6)
    assert mask.data[0].all() and not mask.data[1].any() and mask.data[2].all()


# --- full-size slices --------------------------------------------------------------


def test_full_size_512_slice_body_contour() -> None:
    """A 512x512 body outline with a hole, checked against vectorised half-planes."""
    grid = make_grid((512, 512, 3), (0.78125, 0.78125, 2.5), (-199.6, -199.6, 10.0), AXIAL_HFS)
    plane = Plane(grid, 1, angle=0.0, centre_ij=(255.5, 255.5))
    outer = ellipse(230.0, 180.0, n=360, phase=0.013)  # runs a little outside left/right
    inner = ellipse(30.0, 45.0, n=90, cu=-20.0, cv=10.0, phase=0.2)
    contours = [PlanarContour(plane.to_lps(outer)), PlanarContour(plane.to_lps(inner))]
    mask, stats = rasterise_contours(contours, grid)
    jj, ii = np.mgrid[0:512, 0:512].astype(float)
    u = (ii - 255.5) * 0.78125
    v = (jj - 255.5) * 0.78125
    truth = inside_convex(u, v, outer) & ~inside_convex(u, v, inner)
    full = mask.to_full()
    assert len(unexplained(full[1], truth, u, v, [outer, inner])) == 0
    assert not full[[0, 2]].any()
    assert stats.clipped == 1 and stats.used == 2


# --- property-based: random polygons on random grids ------------------------------


@st.composite
def random_case(draw: st.DrawFn) -> tuple[VoxelGrid, list[Polygon], float]:
    ni = draw(st.integers(6, 18))
    nj = draw(st.integers(6, 18))
    di = draw(st.floats(0.4, 2.0))
    dj = draw(st.floats(0.4, 2.0))
    angles = draw(st.tuples(*[st.floats(-math.pi, math.pi)] * 3))
    grid = make_grid((ni, nj, 2), (di, dj, 1.5), (3.0, -2.0, 1.0), rotation(*angles))
    polys = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(3, 12))
        radii = draw(st.lists(st.floats(0.5, 1.0), min_size=n, max_size=n))
        scale = draw(st.floats(2.0, 12.0))
        cu = draw(st.floats(-6.0, 6.0))
        cv = draw(st.floats(-6.0, 6.0))
        t = np.sort(
            np.asarray(
                draw(st.lists(st.floats(0, 2 * math.pi), min_size=n, max_size=n, unique=True))
            )
        )
        r = scale * np.asarray(radii)
        polys.append(np.stack([cu + r * np.cos(t), cv + r * np.sin(t)], axis=1))
    return grid, polys, draw(st.floats(-math.pi, math.pi))


@settings(max_examples=40, deadline=None)
@given(random_case())
def test_random_polygons_match_crossing_number(
    case: tuple[VoxelGrid, list[Polygon], float],
) -> None:
    grid, polys, angle = case
    rng = np.random.default_rng(1)
    plane = Plane(grid, 1, angle, ((grid.size[0] - 1) / 2, (grid.size[1] - 1) / 2))
    mask, _ = rasterise_contours(scrambled([plane.to_lps(p) for p in polys], rng), grid)
    got = mask.to_full()
    u, v = plane.voxel_uv()
    truth = crossing_number_inside_all(u, v, polys)
    assert len(unexplained(got[1], truth, u, v, polys)) == 0
    assert not got[0].any()
