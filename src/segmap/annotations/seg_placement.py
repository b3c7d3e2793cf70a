"""Placing SEG frames on the slices of an image series.

The rule is nearest neighbour in patient space: a voxel of the image takes the value of
the SEG pixel whose cell contains the voxel's centre, where a frame's cell is its pixel
in-plane and a slab of the SEG's slice spacing across. When a frame lies exactly on a
slice of the image with the same pixel grid (the usual case), that rule reduces to
copying the frame onto the slice, which is what :func:`place_frame` detects; otherwise
:func:`resample_frame` evaluates the rule for every voxel near the frame.

Frames are placed on the planes of the series' grid: after a gap fix-up that grid has
planes without an image file, and a frame's referenced image is mapped to its plane
through :meth:`DicomSeries.k_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from segmap.annotations.seg_frames import FramePlane, SegFrame
from segmap.imaging.series import DicomSeries

ALIGN_TOL_VOXELS = 0.1
"""How far (in voxels in-plane, in slice spacings across) a frame may sit from a slice and
still be copied onto it; DICOM's decimal strings round positions to about 1e-5 mm, and
anything below half a voxel would give the same nearest-neighbour result anyway."""

_MAX_SLAB_RATIO = 1.5
"""A frame thicker than this many image slices covers more than its own slice."""


@dataclass(frozen=True, eq=False)
class ScanSlices:
    """The image's slices as planes in LPS mm.

    Attributes:
        shape_kji: ``(nk, nj, ni)``.
        u, v, n: LPS unit vectors of ``i`` (along a row), ``j`` (down a column) and ``k``.
        di, dj, dk: column, row and slice spacing of the grid in mm.
        positions: ``(nk, 3)`` centre of voxel ``(0, 0, k)`` for each plane.
        offsets: ``(nk,)`` position of each plane along ``n`` in mm.
        gaps: ``(nk,)`` distance to the nearest other plane (inf for a single plane).
        uid_index: plane ``k`` of each image SOPInstanceUID.
    """

    shape_kji: tuple[int, int, int]
    u: npt.NDArray[np.float64]
    v: npt.NDArray[np.float64]
    n: npt.NDArray[np.float64]
    di: float
    dj: float
    dk: float
    positions: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.float64]
    gaps: npt.NDArray[np.float64]
    uid_index: dict[str, int]

    @classmethod
    def from_series(cls, series: DicomSeries) -> ScanSlices:
        """Planes of ``series.grid`` (headers only; pixels are never needed).

        The grid's planes are used rather than the files' positions: they are where the
        output voxels are, and after a gap fix-up some planes have no file at all.
        """
        grid = series.grid
        d = grid.direction_matrix
        nk = grid.size[2]
        positions = grid.voxel_centres_lps([(0, 0, k) for k in range(nk)])
        offsets = positions @ d[:, 2]
        gaps = np.full(nk, np.inf if nk == 1 else grid.spacing[2])
        uid_index: dict[str, int] = {}
        for n, uid in enumerate(series.sop_instance_uids):
            uid_index.setdefault(uid, series.k_of(n))
        return cls(
            shape_kji=grid.array_shape,
            u=d[:, 0].copy(),
            v=d[:, 1].copy(),
            n=d[:, 2].copy(),
            di=grid.spacing[0],
            dj=grid.spacing[1],
            dk=grid.spacing[2],
            positions=positions,
            offsets=offsets,
            gaps=gaps,
            uid_index=uid_index,
        )

    def nearest_slice(self, point_lps: npt.NDArray[np.float64]) -> int:
        """Index of the slice whose plane is nearest to a point."""
        return int(np.argmin(np.abs(self.offsets - float(point_lps @ self.n))))

    def slice_coords(self, k: int, points_lps: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Continuous ``(i, j, distance in mm off the plane)`` of ``(N, 3)`` points on slice k."""
        rel = np.asarray(points_lps, dtype=float).reshape(-1, 3) - self.positions[k]
        return np.stack([rel @ self.u / self.di, rel @ self.v / self.dj, rel @ self.n], axis=1)


@dataclass(frozen=True, eq=False)
class FrameGeometry:
    """A frame's plane with every part known (absent parts taken from the image)."""

    origin: npt.NDArray[np.float64]  # centre of pixel (row 0, column 0), LPS mm
    a: npt.NDArray[np.float64]  # unit vector of increasing column
    b: npt.NDArray[np.float64]  # unit vector of increasing row
    dc: float  # column spacing (mm)
    dr: float  # row spacing (mm)
    thickness: float  # slab across the plane (mm)

    @property
    def normal(self) -> npt.NDArray[np.float64]:
        m = np.cross(self.a, self.b)
        return m / np.linalg.norm(m)

    def pixel_centres(self, rc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """LPS of ``(N, 2)`` (row, column) pixel indices."""
        rc = np.asarray(rc, dtype=float).reshape(-1, 2)
        return self.origin + rc[:, 1:2] * self.dc * self.a + rc[:, 0:1] * self.dr * self.b


@dataclass(frozen=True)
class Placement:
    """Where a frame goes: onto slice ``k`` directly, through resampling, or nowhere."""

    kind: str  # "slice", "resample" or "skip"
    k: int | None = None
    reason: str = ""


def seg_slice_spacing(frames: tuple[SegFrame, ...]) -> float | None:
    """The SEG's own slice spacing (mm): SpacingBetweenSlices, else the smallest gap
    between distinct frame planes, else None (a single plane with no spacing given)."""
    for f in frames:
        if f.plane.spacing_between_slices:
            return f.plane.spacing_between_slices
    planes = [f.plane for f in frames if f.plane.position_lps is not None]
    if not planes or planes[0].row_direction is None or planes[0].column_direction is None:
        return None
    normal = np.cross(planes[0].row_direction, planes[0].column_direction)
    offsets = np.unique(
        np.round([float(p.position_lps @ normal) for p in planes if p.position_lps is not None], 3)
    )
    if offsets.size < 2:
        return None
    return float(np.min(np.diff(offsets)))


def frame_geometry(
    plane: FramePlane, scan: ScanSlices, k_hint: int | None, thickness: float | None
) -> FrameGeometry | None:
    """Complete a frame's plane; None when its position cannot be known.

    An absent orientation or spacing is taken from the image; an absent position from the
    slice the frame references (``k_hint``).
    """
    if plane.position_lps is not None:
        origin = plane.position_lps
    elif k_hint is not None:
        origin = scan.positions[k_hint]
    else:
        return None
    a = plane.row_direction if plane.row_direction is not None else scan.u
    b = plane.column_direction if plane.column_direction is not None else scan.v
    dr, dc = plane.pixel_spacing if plane.pixel_spacing is not None else (scan.dj, scan.di)
    if thickness is None:
        k = k_hint if k_hint is not None else scan.nearest_slice(origin)
        gap = float(scan.gaps[k])
        thickness = gap if np.isfinite(gap) else scan.dk
    return FrameGeometry(origin, a, b, dc, dr, thickness)


def place_frame(
    frame: SegFrame, rows: int, columns: int, scan: ScanSlices, thickness: float | None
) -> tuple[Placement, FrameGeometry | None]:
    """Decide how a frame reaches the image: copied onto one slice, resampled, or skipped.

    The frame's position decides when it is known; the referenced source image is used
    when the position is absent. A frame referencing no image of the series and lying on
    none of its slices goes to resampling, which drops whatever falls outside the image.

    A frame derived from an image of this series was drawn on the scan's own slices, so
    when it lies on one it is copied there whatever slice spacing the SEG declares:
    annotators often paint every other slice, and the gaps between such frames are
    empty slices, not thick ones.
    """
    k_ref = next((scan.uid_index[u] for u in frame.source_uids if u in scan.uid_index), None)
    geom = frame_geometry(frame.plane, scan, k_ref, thickness)
    if geom is None:
        reason = (
            "its source image is not in the series and it has no position"
            if frame.source_uids
            else "it names no source image and has no position"
        )
        return Placement("skip", reason=reason), None
    k = k_ref if frame.plane.position_lps is None else scan.nearest_slice(geom.origin)
    assert k is not None
    same_size = rows == scan.shape_kji[1] and columns == scan.shape_kji[2]
    if same_size and _on_slice(geom, rows, columns, scan, k, check_slab=k_ref is None):
        return Placement("slice", k), geom
    return Placement("resample"), geom


def _on_slice(
    geom: FrameGeometry, rows: int, columns: int, scan: ScanSlices, k: int, *, check_slab: bool
) -> bool:
    """True when every pixel centre of the frame is (within tolerance) the same-index voxel
    centre of slice ``k`` and, with ``check_slab``, the frame's slab covers no other slice."""
    gap = float(scan.gaps[k])
    if check_slab and np.isfinite(gap) and geom.thickness > _MAX_SLAB_RATIO * gap:
        return False
    corners_rc = np.array(
        [[0, 0], [0, columns - 1], [rows - 1, 0], [rows - 1, columns - 1]], dtype=float
    )
    ijd = scan.slice_coords(k, geom.pixel_centres(corners_rc))
    across_tol = ALIGN_TOL_VOXELS * (gap if np.isfinite(gap) else scan.dk)
    return bool(
        np.all(np.abs(ijd[:, 0] - corners_rc[:, 1]) <= ALIGN_TOL_VOXELS)
        and np.all(np.abs(ijd[:, 1] - corners_rc[:, 0]) <= ALIGN_TOL_VOXELS)
        and np.all(np.abs(ijd[:, 2]) <= across_tol)
    )


def resample_frame(
    mask: npt.NDArray[np.bool_], geom: FrameGeometry, scan: ScanSlices
) -> list[tuple[int, int, int, npt.NDArray[np.bool_]]]:
    """Nearest-neighbour placement of one frame's pixels on the image's slices.

    Returns pieces ``(k, j0, i0, block)``: ``block[j, i]`` is true where the voxel
    ``(i0 + i, j0 + j, k)`` has its centre inside a true pixel's cell (in-plane the pixel,
    across the half-open slab ``[-thickness/2, thickness/2)``). Only voxels near the
    frame's true pixels are evaluated, so cost follows the region, not the image.
    """
    if not mask.any():
        return []
    rs = np.flatnonzero(mask.any(axis=1))
    cs = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rs[0]), int(rs[-1]), int(cs[0]), int(cs[-1])
    m = geom.normal
    half = geom.thickness / 2.0
    corners = np.array(
        [[r, c] for r in (r0 - 0.5, r1 + 0.5) for c in (c0 - 0.5, c1 + 0.5)], dtype=float
    )
    flat = geom.pixel_centres(corners)
    box = np.concatenate([flat + half * m, flat - half * m])
    lo_off, hi_off = float(np.min(box @ scan.n)), float(np.max(box @ scan.n))
    nk, nj, ni = scan.shape_kji
    pieces = []
    for k in np.flatnonzero((scan.offsets >= lo_off - 1e-6) & (scan.offsets <= hi_off + 1e-6)):
        ij = scan.slice_coords(int(k), box)
        i0 = max(0, int(np.floor(ij[:, 0].min())))
        i1 = min(ni - 1, int(np.ceil(ij[:, 0].max())))
        j0 = max(0, int(np.floor(ij[:, 1].min())))
        j1 = min(nj - 1, int(np.ceil(ij[:, 1].max())))
        if i0 > i1 or j0 > j1:
            continue
        block = _sample_slice(mask, geom, scan, int(k), (j0, j1, i0, i1), half)
        if block.any():
            pieces.append((int(k), j0, i0, block))
    return pieces


def _sample_slice(
    mask: npt.NDArray[np.bool_],
    geom: FrameGeometry,
    scan: ScanSlices,
    k: int,
    window: tuple[int, int, int, int],
    half: float,
) -> npt.NDArray[np.bool_]:
    """Frame values at the voxel centres of slice ``k`` inside ``window`` (j0, j1, i0, i1)."""
    j0, j1, i0, i1 = window
    jj, ii = np.meshgrid(
        np.arange(j0, j1 + 1, dtype=float), np.arange(i0, i1 + 1, dtype=float), indexing="ij"
    )
    rel0 = scan.positions[k] - geom.origin
    step_i = scan.di * scan.u
    step_j = scan.dj * scan.v
    m = geom.normal

    def along(axis: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return float(rel0 @ axis) + ii * float(step_i @ axis) + jj * float(step_j @ axis)

    col = np.floor(along(geom.a) / geom.dc + 0.5).astype(np.int64)
    row = np.floor(along(geom.b) / geom.dr + 0.5).astype(np.int64)
    dist = along(m)
    rows, cols = mask.shape
    inside = (dist >= -half) & (dist < half) & (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
    block = np.zeros(jj.shape, dtype=bool)
    block[inside] = mask[row[inside], col[inside]]
    return block
