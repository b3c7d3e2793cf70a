"""Stacking the slices of one series into a regular voxel grid, or saying why not.

Slices are ordered by the projection of ImagePositionPatient on the slice normal
(row cosine x column cosine), never by file name or InstanceNumber. The stack must be one
regular grid; every refusal names the slices at fault (file name and position).

Tolerances (mm unless said otherwise):

* The headers agree (frame of reference, size, pixel spacing, orientation): see
  :mod:`segmap.imaging.stack_headers`. Each IOP is unit length and orthogonal within
  ``COSINE_TOL``.
* Positions: a slice lies within max(0.01 mm, 1% of the slice spacing) of where a regular
  grid from the first to the last slice puts it (the spacing used for the tolerance is the
  smaller of the mean and median step); closer than that to its neighbour it is a
  duplicate; its offset across the normal (a sheared stack, e.g. gantry tilt) is within
  max(0.01 mm, 1% of the smaller pixel spacing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from segmap.imaging.dicomheaders import SliceHeader
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.stack_headers import NO_FIXUP, SliceNamer, check_headers, listing, refusal

COSINE_TOL = 1e-3
DEFAULT_SINGLE_SLICE_MM = 1.0
FIXUP_MAX_PLANES_FACTOR = 10
FIXUP_MAX_PLANES_FLOOR = 1000


def position_tolerance(spacing_mm: float) -> float:
    """Largest accepted distance (mm) of a slice from its regular-grid plane."""
    return max(0.01, 0.01 * abs(spacing_mm))


@dataclass(frozen=True)
class Stack:
    """The outcome of stacking: slices in order along the normal and the grid they make.

    Attributes:
        grid: the regular grid; ``k`` runs along the slice normal.
        slices: headers in order along the normal.
        slice_indices: plane ``k`` on the grid of each entry of ``slices``.
        fixups: sentences describing any fix-up or assumption.
    """

    grid: VoxelGrid
    slices: tuple[SliceHeader, ...]
    slice_indices: tuple[int, ...]
    fixups: tuple[str, ...]


def _direction(iop: Sequence[float], uid: str, example: str) -> npt.NDArray[np.float64]:
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:], dtype=float)
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if abs(nr - 1) > COSINE_TOL or abs(nc - 1) > COSINE_TOL or abs(row @ col) > COSINE_TOL:
        raise refusal(
            uid,
            f"ImageOrientationPatient {list(iop)} of {example} is not two orthogonal unit vectors",
            "Fix the files' headers.",
        )
    # Re-orthonormalise the few-digit cosines written in files so the grid is exact.
    row = row / nr
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    return np.column_stack([row, col, normal])


def _check_not_sheared(
    slices: Sequence[SliceHeader],
    positions: npt.NDArray[np.float64],
    normal: npt.NDArray[np.float64],
    uid: str,
    name: SliceNamer,
) -> None:
    spacing = slices[0].pixel_spacing
    assert spacing is not None
    tol = max(0.01, 0.01 * min(spacing))
    rel = positions - positions[0]
    across = rel - np.outer(rel @ normal, normal)
    off = np.linalg.norm(across, axis=1)
    bad = [
        f"{name(h)} is {d:.3f} mm off the stack's axis"
        for h, d in zip(slices, off, strict=True)
        if d > tol
    ]
    if bad:
        raise refusal(
            uid,
            "the slices are not stacked along their normal (a tilted gantry or sheared "
            f"stack; tolerance {tol:.3f} mm): " + listing(bad),
            "segmap refuses sheared stacks rather than misplace voxels; resample the series "
            "to an orthogonal grid first.",
        )


def _median(values: npt.NDArray[np.float64]) -> float:
    """``np.median`` of a non-empty 1-D array, computed the same way (the mean of the two
    middle values for an even count), without its first call importing ``numpy.ma``
    (~10 ms, a few percent of a mask-only conversion)."""
    ordered = np.sort(values)
    n = len(ordered)
    if np.isnan(ordered[-1]):  # NaN sorts last; np.median answers NaN then
        return float(np.median(values))
    mid = n // 2
    return float(ordered[mid]) if n % 2 else float((ordered[mid - 1] + ordered[mid]) / 2.0)


def _check_no_duplicates(
    slices: Sequence[SliceHeader], along: npt.NDArray[np.float64], uid: str, name: SliceNamer
) -> None:
    steps = np.diff(along)
    tol = position_tolerance(_median(steps)) if steps.size else 0.01
    close = np.flatnonzero(steps < tol).tolist()
    pairs = [f"{name(slices[n])} and {name(slices[n + 1])}" for n in close]
    if pairs:
        raise refusal(
            uid,
            f"several slices share one position (closer than {tol:.3f} mm along the normal): "
            + listing(pairs),
            "The series probably mixes two acquisitions or holds copies; " + NO_FIXUP,
        )


def spacing_tolerance(along: npt.NDArray[np.float64]) -> float:
    """Position tolerance (mm) for sorted positions ``along`` the normal.

    It follows the smaller of the mean and the median step, so one large gap cannot
    loosen it.
    """
    steps = np.diff(along)
    return position_tolerance(min(float(np.mean(steps)), _median(steps)))


def _irregular_steps(
    slices: Sequence[SliceHeader], along: npt.NDArray[np.float64], name: SliceNamer
) -> list[str] | None:
    """Descriptions of the steps that break regular spacing, or None when regular."""
    n = len(slices)
    dk = (along[-1] - along[0]) / (n - 1)
    tol = spacing_tolerance(along)
    deviation = along - (along[0] + dk * np.arange(n))
    if np.max(np.abs(deviation)) <= tol:
        return None
    steps = np.diff(along)
    usual = _median(steps)
    bad = [
        f"{steps[m]:.3f} mm from {name(slices[m])} to {name(slices[m + 1])}"
        for m in np.flatnonzero(np.abs(steps - usual) > tol).tolist()
    ]
    if not bad:  # small steps that add up: name the slice that drifted furthest
        m = int(np.argmax(np.abs(deviation)))
        bad = [f"{name(slices[m])} is {deviation[m]:+.3f} mm off the regular grid"]
    bad.insert(0, f"the usual step is {usual:.3f} mm")
    return bad


def _fixup_planes(
    along: npt.NDArray[np.float64], uid: str
) -> tuple[float, int, tuple[int, ...], float]:
    """Regular planes at the smallest step over the same extent: (dk, nk, k per slice, shift)."""
    steps = np.diff(along)
    dk = float(np.min(steps))
    extent = float(along[-1] - along[0])
    nk = int(round(extent / dk)) + 1
    limit = max(FIXUP_MAX_PLANES_FACTOR * len(along), FIXUP_MAX_PLANES_FLOOR)
    if nk > limit:
        raise refusal(
            uid,
            f"a regular grid at the smallest step {dk:.3f} mm over {extent:.1f} mm would need "
            f"{nk} planes for {len(along)} slices",
            "The fix-up refuses grids more than "
            f"{FIXUP_MAX_PLANES_FACTOR}x the slice count (and over {FIXUP_MAX_PLANES_FLOOR}); "
            "check that the files belong to one acquisition.",
        )
    ks = np.rint((along - along[0]) / dk).astype(int)
    shift = float(np.max(np.abs(along - (along[0] + ks * dk))))
    return dk, nk, tuple(int(k) for k in ks), shift


def _single_slice_spacing(h: SliceHeader) -> tuple[float, tuple[str, ...]]:
    if h.slice_thickness is not None:
        return h.slice_thickness, ()
    if h.spacing_between_slices is not None:
        return h.spacing_between_slices, (
            f"Single-slice series without SliceThickness: slice spacing taken from "
            f"SpacingBetweenSlices ({h.spacing_between_slices:g} mm).",
        )
    return DEFAULT_SINGLE_SLICE_MM, (
        "Single-slice series without SliceThickness or SpacingBetweenSlices: a slice "
        f"spacing of {DEFAULT_SINGLE_SLICE_MM:g} mm was assumed.",
    )


def stack_slices(slices: Sequence[SliceHeader], *, fixup: bool = False) -> Stack:
    """Order the slices of one series along their normal and build their voxel grid.

    Raises :class:`SeriesGeometryError` naming the slices when they are not one regular
    grid. With ``fixup``, uneven spacing and gaps are repaired: the slices are placed, each
    at its nearest plane, on a regular grid at the smallest step between neighbouring
    slices over the same extent; planes with no slice stay empty. Other problems are
    always refused.
    """
    if not slices:
        raise ValueError("no slices to stack")
    uid = slices[0].series_instance_uid
    name = SliceNamer([h.path for h in slices])
    check_headers(slices, uid, name)
    first = slices[0]
    assert first.orientation is not None and first.pixel_spacing is not None
    direction = _direction(first.orientation, uid, name(first))
    normal = direction[:, 2]
    positions = np.array([h.position for h in slices], dtype=float)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    ordered = tuple(slices[int(n)] for n in order.tolist())
    positions, along = positions[order], along[order]
    _check_no_duplicates(ordered, along, uid, name)
    _check_not_sheared(ordered, positions, normal, uid, name)

    fixups: tuple[str, ...] = ()
    indices = tuple(range(len(ordered)))
    if len(ordered) == 1:
        dk, fixups = _single_slice_spacing(first)
        nk = 1
    else:
        nk = len(ordered)
        dk = float((along[-1] - along[0]) / (nk - 1))
        problems = _irregular_steps(ordered, along, name)
        if problems is not None and not fixup:
            raise refusal(
                uid,
                "the slice spacing is uneven or has gaps "
                f"(tolerance {spacing_tolerance(along):.3f} mm): " + listing(problems),
                "Ask for a geometry fix-up to place the slices on a regular grid at the "
                "smallest spacing (planes without a slice stay empty).",
            )
        if problems is not None:
            dk, nk, indices, shift = _fixup_planes(along, uid)
            steps = np.diff(along)
            fixups = (
                f"Uneven slice spacing (steps from {steps.min():.3f} to {steps.max():.3f} mm): "
                f"the {len(ordered)} slices were placed on a regular grid of {nk} planes at "
                f"{dk:.3f} mm (the smallest step) over the same extent, each on its nearest "
                f"plane (largest shift {shift:.3f} mm); {nk - len(ordered)} planes without a "
                "slice are empty.",
            )
    dj, di = first.pixel_spacing
    assert first.rows is not None and first.columns is not None
    grid = VoxelGrid.from_arrays(
        size=(first.columns, first.rows, nk),
        spacing=(di, dj, dk),
        origin_lps=positions[0],
        direction=direction,
    )
    return Stack(grid=grid, slices=ordered, slice_indices=indices, fixups=fixups)
