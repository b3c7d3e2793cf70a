"""Agreement between two masks of one region on one grid: Dice and the 95th-percentile
Hausdorff distance (HD95), in mm.

Dice is ``2 |A ∩ B| / (|A| + |B|)``. The surface of a mask is its voxels that have a
6-connected neighbour outside it (the mask minus its erosion, the image border counting
as outside). HD95 is the larger of the two directed 95th percentiles (linear
interpolation) of the distances, in mm along the voxel spacing, from each surface voxel
of one mask to the nearest surface voxel of the other: the convention MONAI's
``compute_hausdorff_distance(percentile=95)`` follows. Distances use SciPy's exact
Euclidean distance transform on the masks' joint bounding box (plus one voxel), which
gives the same distances as the whole grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

PERCENTILE = 95.0


@dataclass(frozen=True)
class Agreement:
    """Dice (0..1) and HD95 (mm) of two masks; None where undefined (a mask is empty)."""

    dice: float | None
    hd95_mm: float | None


def dice(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float | None:
    """Dice coefficient of two boolean masks; None when both are empty."""
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return None
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _surface(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    eroded = ndimage.binary_erosion(
        mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0
    )
    return mask & ~eroded


def hd95(
    a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_], spacing_mm: Sequence[float]
) -> float | None:
    """95th-percentile symmetric Hausdorff distance in mm; None when either mask is empty.

    ``spacing_mm`` is the voxel size along the arrays' axes, in their order.
    """
    if not a.any() or not b.any():
        return None
    a, b = _crop(a, b)
    sa, sb = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing_mm)
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing_mm)
    return float(max(np.percentile(to_b[sa], PERCENTILE), np.percentile(to_a[sb], PERCENTILE)))


def agreement(
    a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_], spacing_mm: Sequence[float]
) -> Agreement:
    """Dice and HD95 of ``a`` and ``b``."""
    return Agreement(dice(a, b), hd95(a, b, spacing_mm))


def _crop(
    a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Both masks cut to their joint bounding box, one voxel wider where the grid allows
    (so the border still counts as outside exactly where it did)."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        others = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=others))
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, union.shape[axis])))
    window = tuple(box)
    return a[window], b[window]
