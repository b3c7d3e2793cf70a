"""How large a resampled grid may be: the voxel budget, and sane voxel spacings.

A target spacing decides the size of the arrays a conversion allocates: the resampled
image, its mask and the working planes in between. Nothing else bounds it, so a tiny
spacing (0.05 mm over a body CT: tens of billions of voxels; 1e-300 mm: more than any
memory) would exhaust the machine or fail deep inside NumPy. The rule lives here, once:
the model creation of the server, the command line and the pipeline (before it
allocates anything) all call it, with the same numbers and the same message.

The budget: 2**30 voxels (1,073,741,824) by default, the environment variable
``SEGMAP_MAX_VOXELS`` changes it. That is a 1024 x 1024 x 1024 grid, or a whole 500 mm
body field at 0.49 mm isotropic, far above what a training grid needs (nnU-Net and MONAI
work at 0.5-3 mm), while at the estimate below (7 bytes a voxel) its peak stays near
7 GiB, which one worker of an ordinary 16 GiB server can hold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from segmap.errors import SegmapError

DEFAULT_MAX_VOXELS = 2**30
MAX_VOXELS_ENV = "SEGMAP_MAX_VOXELS"
MIN_SPACING_MM = 0.01  # finer than any CT or MR voxel (micro-CT is ~0.01-0.05 mm)
MAX_SPACING_MM = 100.0  # one voxel a decimetre: coarser is a typo (metres for mm?)
REFERENCE_FIELD_MM = 500.0  # a body CT's field of view along each axis
# Peak bytes a resampled voxel costs in a conversion: the image in its stored type
# (int16, 2 bytes), the float32 working planes of the in-plane pass (4) and the mask
# (uint8, 1). An estimate for messages and documentation, not an exact account.
BYTES_PER_VOXEL = 7
_ROUNDING_EPS = 1e-6  # as grid_for_spacing: an extent that is a whole number of voxels


class VoxelBudgetError(SegmapError):
    """A voxel spacing that is not a length, or a grid larger than the voxel budget."""


def max_voxels(environ: Mapping[str, str] | None = None) -> int:
    """The voxel budget: ``$SEGMAP_MAX_VOXELS`` when set, else ``DEFAULT_MAX_VOXELS``.

    Raises:
        VoxelBudgetError: the variable is set but is not a whole number of at least 1.
    """
    env = os.environ if environ is None else environ
    raw = env.get(MAX_VOXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_VOXELS
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise VoxelBudgetError(
            f"{MAX_VOXELS_ENV}={raw[:40]!r} is not a whole number of voxels; set it to e.g. "
            f"{DEFAULT_MAX_VOXELS} or unset it"
        )
    return int(raw)


def spacing_problem(spacing: Sequence[float]) -> str | None:
    """Why ``spacing`` (x, y, z in mm) is not a usable voxel spacing, or None.

    Three finite numbers from ``MIN_SPACING_MM`` to ``MAX_SPACING_MM``.
    """
    try:
        values = [float(v) for v in spacing]
    except (TypeError, ValueError):
        return f"the voxel spacing {spacing!r} is not three numbers in mm"
    if len(values) != 3:
        return f"the voxel spacing needs three numbers [x, y, z] in mm; got {len(values)}"
    for axis, v in zip("xyz", values, strict=True):
        if not math.isfinite(v) or not MIN_SPACING_MM <= v <= MAX_SPACING_MM:
            return (
                f"the voxel spacing {axis} = {v:g} mm is outside {MIN_SPACING_MM:g} to "
                f"{MAX_SPACING_MM:g} mm"
            )
    return None


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """``spacing`` as three floats (mm) when :func:`spacing_problem` finds nothing.

    Raises:
        VoxelBudgetError: with the problem sentence.
    """
    problem = spacing_problem(spacing)
    if problem is not None:
        raise VoxelBudgetError(problem)
    x, y, z = (float(v) for v in spacing)
    return (x, y, z)


def resampled_size(
    size: Sequence[int], spacing_mm: Sequence[float], target_mm: Sequence[float]
) -> tuple[int, int, int]:
    """Voxel counts ``(i, j, k)`` of a grid of ``size`` x ``spacing_mm`` at ``target_mm``.

    Along each axis the extent ``n * old spacing`` divided by the new spacing, rounded to
    the nearest integer (halves up), at least 1 -- the rule of
    ``segmap.imaging.resample.grid_for_spacing``, which calls this. Python integers, so a
    absurd spacing gives a huge count rather than an overflow.
    """
    counts = [
        max(1, math.floor(n * s_old / s_new + 0.5 + _ROUNDING_EPS))
        for n, s_old, s_new in zip(size, spacing_mm, target_mm, strict=True)
    ]
    return (counts[0], counts[1], counts[2])


def resampled_what(spacing_mm: Sequence[float]) -> str:
    """How budget messages name a grid resampled to ``spacing_mm`` (mm)."""
    x, y, z = spacing_mm
    return f"the grid resampled to {x:g} x {y:g} x {z:g} mm"


def check_resampled_budget(
    size: Sequence[int],
    spacing_mm: Sequence[float],
    target_mm: Sequence[float],
    *,
    budget: int | None = None,
) -> tuple[int, int, int]:
    """The size of a ``size`` x ``spacing_mm`` grid resampled to ``target_mm``, if in budget.

    For callers that know a scan's grid but have allocated nothing yet (the pipeline
    right after reading the series headers).

    Raises:
        VoxelBudgetError: the target is not a sane spacing, or the grid is over budget.
    """
    target = check_spacing(target_mm)
    counts = resampled_size(size, spacing_mm, target)
    check_grid_budget(counts, resampled_what(target), budget=budget)
    return counts


def gib(voxels: int, bytes_per_voxel: int = BYTES_PER_VOXEL) -> float:
    """Memory of ``voxels`` at ``bytes_per_voxel``, in GiB (2**30 bytes)."""
    return voxels * bytes_per_voxel / 2**30


def check_grid_budget(size: Sequence[int], what: str, *, budget: int | None = None) -> int:
    """The voxel count of a grid of ``size``, if within the budget.

    Args:
        size: voxel counts along the grid's axes.
        what: how the message names the grid ("the resampled grid at 0.5 x 0.5 x 1 mm").
        budget: voxels allowed; default :func:`max_voxels`.

    Raises:
        VoxelBudgetError: over the budget; the message gives the grid, its voxel count,
            its memory estimate in GiB and the budget.
    """
    limit = max_voxels() if budget is None else budget
    voxels = math.prod(int(n) for n in size)
    if voxels > limit:
        shape = " x ".join(str(int(n)) for n in size)
        raise VoxelBudgetError(
            f"{what} would be {shape} = {voxels:,} voxels (about {gib(voxels):,.1f} GiB to "
            f"convert), over the budget of {limit:,} voxels ({gib(limit):,.1f} GiB); use a "
            f"coarser voxel spacing, or raise {MAX_VOXELS_ENV} on a machine with the memory"
        )
    return voxels


def check_model_spacing(
    spacing: Sequence[float], *, budget: int | None = None
) -> tuple[float, float, float]:
    """A model's voxel spacing (x, y, z in mm), refused when no real scan could use it.

    Sane bounds first (:func:`spacing_problem`), then the grid over a
    ``REFERENCE_FIELD_MM`` cube -- the field of a body CT -- must fit the budget: a
    spacing that even such a field exceeds would fail every conversion of the model.

    Raises:
        VoxelBudgetError: naming the problem, or the size the reference grid would have.
    """
    x, y, z = check_spacing(spacing)
    size = resampled_size((1, 1, 1), (REFERENCE_FIELD_MM,) * 3, (x, y, z))
    check_grid_budget(
        size,
        f"at {x:g} x {y:g} x {z:g} mm, a {REFERENCE_FIELD_MM:g} mm field of view",
        budget=budget,
    )
    return (x, y, z)
