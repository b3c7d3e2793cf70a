"""The seven-region abdomen-like phantom: its contours (the truth) and a CT that matches.

Coordinates: in-plane phantom coordinates ``(u, v, w)`` are mm along the grid's ``i``
(row direction), ``j`` (column direction) and ``k`` (slice normal) axes, measured from
the centre of the grid; contours are returned in patient LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from segmap.imaging.grid import VoxelGrid
from segmap.testing.dicomfields import COORD_DECIMALS
from segmap.testing.rtstruct import SyntheticContour, SyntheticROI


@dataclass(frozen=True)
class _Ellipse:
    """A cross-section family: an ellipse in the (u, v) plane whose size depends on w.

    ``kind`` is ``ellipsoid`` (semi-axes shrink as sqrt(1 - ((w - cw) / aw)^2)),
    ``cylinder`` (constant between ``cw - aw`` and ``cw + aw``) or ``flower`` (a concave
    outline ``r(t) = a (1 + amp cos(lobes (t - phase - twist w)))`` on a cylinder).
    """

    kind: str
    cu: float
    cv: float
    cw: float
    au: float
    av: float
    aw: float
    amp: float = 0.0
    lobes: int = 0
    twist: float = 0.0  # radians per mm of w

    def scale_at(self, w: float) -> float:
        t = (w - self.cw) / self.aw
        if abs(t) > 1.0:
            return 0.0
        if self.kind == "ellipsoid":
            return float(np.sqrt(1.0 - t * t))
        return 1.0

    def loop(self, w: float, n: int) -> npt.NDArray[np.float64] | None:
        """``(n, 2)`` polygon (u, v) in mm at ``w``, or None where the shape is absent."""
        s = self.scale_at(w)
        if s < 0.08:  # skip slivers a few vertices wide: they say nothing a test needs
            return None
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        r = np.ones_like(t)
        if self.kind == "flower":
            r = 1.0 + self.amp * np.cos(self.lobes * (t - self.twist * w))
        return np.stack(
            [self.cu + s * self.au * r * np.cos(t), self.cv + s * self.av * r * np.sin(t)], axis=1
        )

    def inside(
        self, u: npt.NDArray[np.float64], v: npt.NDArray[np.float64], w: float
    ) -> npt.NDArray[np.bool_]:
        """Analytic inside test at in-plane points (used only to paint the CT image)."""
        s = self.scale_at(w)
        if s < 0.08:
            return np.zeros(np.broadcast(u, v).shape, dtype=bool)
        du = (u - self.cu) / (s * self.au)
        dv = (v - self.cv) / (s * self.av)
        rr = np.hypot(du, dv)
        if self.kind == "flower":
            t = np.arctan2(dv, du)
            return rr < 1.0 + self.amp * np.cos(self.lobes * (t - self.twist * w))
        return rr < 1.0


@dataclass(frozen=True)
class _PhantomRegion:
    name: str
    color: tuple[int, int, int]
    hu: float
    outer: tuple[_Ellipse, ...]  # disjoint components
    holes: tuple[_Ellipse, ...] = ()  # inner contours (holes) of the components
    hole_hu: float | None = None


PHANTOM_REGION_VALUES: dict[str, int] = {
    "Body": 1,
    "Liver": 10,
    "Spleen": 20,
    "Kidneys": 30,
    "Aorta": 40,
    "Vertebra": 50,
    "Lesion": 60,
}
"""A region map for the phantom, in painting order (organs after the body, lesion last)."""


def _phantom_regions(grid: VoxelGrid, body_overhang: float) -> list[_PhantomRegion]:
    hu_, hv_, hw_ = (grid.size[n] * grid.spacing[n] / 2 for n in range(3))
    r0 = min(hu_, hv_)
    e = _Ellipse
    return [
        _PhantomRegion(
            "Body",
            (0, 160, 0),
            0.0,
            (e("cylinder", 0, 0.05 * hv_, 0, body_overhang * hu_, 0.78 * hv_, 1.5 * hw_),),
        ),
        _PhantomRegion(
            "Liver",
            (170, 80, 50),
            60.0,
            (
                e(
                    "ellipsoid",
                    -0.38 * hu_,
                    -0.1 * hv_,
                    0.15 * hw_,
                    0.33 * hu_,
                    0.3 * hv_,
                    0.35 * hw_,
                ),
            ),
        ),
        _PhantomRegion(
            "Spleen",
            (150, 50, 200),
            50.0,
            (e("ellipsoid", 0.52 * hu_, 0.05 * hv_, 0.2 * hw_, 0.15 * hu_, 0.15 * hv_, 0.2 * hw_),),
        ),
        _PhantomRegion(
            "Kidneys",
            (230, 200, 0),
            30.0,
            (
                e(
                    "ellipsoid",
                    -0.32 * hu_,
                    0.38 * hv_,
                    -0.25 * hw_,
                    0.1 * hu_,
                    0.15 * hv_,
                    0.22 * hw_,
                ),
                e(
                    "ellipsoid",
                    0.32 * hu_,
                    0.38 * hv_,
                    -0.25 * hw_,
                    0.1 * hu_,
                    0.15 * hv_,
                    0.22 * hw_,
                ),
            ),
        ),
        _PhantomRegion(
            "Aorta",
            (220, 30, 30),
            40.0,
            (e("cylinder", 0.06 * hu_, 0.3 * hv_, 0, 0.1 * r0, 0.1 * r0, 0.4 * hw_),),
            holes=(e("cylinder", 0.06 * hu_, 0.3 * hv_, 0, 0.06 * r0, 0.06 * r0, 0.4 * hw_),),
            hole_hu=200.0,
        ),
        _PhantomRegion(
            "Vertebra",
            (240, 240, 240),
            700.0,
            (
                e(
                    "flower",
                    0.0,
                    0.6 * hv_,
                    0,
                    0.12 * r0,
                    0.12 * r0,
                    0.5 * hw_,
                    amp=0.35,
                    lobes=5,
                    twist=0.02,
                ),
            ),
        ),
        _PhantomRegion(
            "Lesion",
            (0, 120, 255),
            90.0,
            (
                e(
                    "ellipsoid",
                    -0.42 * hu_,
                    -0.12 * hv_,
                    0.2 * hw_,
                    0.08 * r0,
                    0.08 * r0,
                    0.12 * hw_,
                ),
            ),
        ),
    ]


def phantom_rois(
    grid: VoxelGrid,
    *,
    vertices: int = 96,
    body_overhang: float = 1.06,
    decimals: int = COORD_DECIMALS,
) -> tuple[SyntheticROI, ...]:
    """The seven phantom ROIs as contours on the slice planes of ``grid``.

    Shapes scale with the grid's extent, so any size, spacing and orientation works. The
    body is ``body_overhang`` times wider than the image (its contours leave the image
    left and right); the kidneys are two disjoint contours per slice; the aorta is an
    outer and an inner contour (a hole); the vertebra is concave; the lesion lies inside
    the liver. Vertices are rounded to ``decimals`` mm, as written to the file.
    """
    d = grid.direction_matrix
    centre = np.asarray(grid.origin_lps) + d @ (
        (np.asarray(grid.size) - 1) / 2 * np.asarray(grid.spacing)
    )
    nk = grid.size[2]
    rois = []
    for region in _phantom_regions(grid, body_overhang):
        contours: list[SyntheticContour] = []
        for k in range(nk):
            w = (k - (nk - 1) / 2) * grid.spacing[2]
            plane_centre = centre + w * d[:, 2]
            for shape in (*region.outer, *region.holes):
                loop = shape.loop(w, vertices)
                if loop is None:
                    continue
                pts = plane_centre + loop[:, :1] * d[:, 0] + loop[:, 1:] * d[:, 1]
                contours.append(SyntheticContour(np.round(pts, decimals), k))
        rois.append(SyntheticROI(region.name, region.color, tuple(contours), region.hu))
    return tuple(rois)


def render_phantom_ct(
    grid: VoxelGrid,
    *,
    body_overhang: float = 1.06,
    noise_hu: float = 8.0,
    seed: int = 0,
) -> npt.NDArray[np.int16]:
    """A CT volume ``[k, j, i]`` in HU that looks like the phantom (air -1000 outside).

    The image uses the analytic shapes, not the polygons; it is for viewing and timing,
    not a truth. ``noise_hu`` adds Gaussian noise of that standard deviation.
    """
    ni, nj, nk = grid.size
    u = (np.arange(ni) - (ni - 1) / 2) * grid.spacing[0]
    v = (np.arange(nj) - (nj - 1) / 2) * grid.spacing[1]
    uu, vv = np.meshgrid(u, v)  # [j, i]
    rng = np.random.default_rng(seed)
    out = np.empty(grid.array_shape, dtype=np.int16)
    regions = _phantom_regions(grid, body_overhang)
    for k in range(nk):
        w = (k - (nk - 1) / 2) * grid.spacing[2]
        plane = np.full((nj, ni), -1000.0)
        for region in regions:
            for shape in region.outer:
                plane[shape.inside(uu, vv, w)] = region.hu
            for hole in region.holes:
                plane[hole.inside(uu, vv, w)] = (
                    region.hole_hu if region.hole_hu is not None else -1000.0
                )
        if noise_hu > 0:
            plane += rng.normal(0.0, noise_hu, plane.shape).astype(np.float32)
        out[k] = np.clip(np.rint(plane), -1024, 3071).astype(np.int16)
    return out
