"""Set operations on :class:`~segmap.imaging.boxmask.BoxMask` that stay within boxes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segmap.imaging.boxmask import BoxMask


def union_masks(masks: Sequence[BoxMask], grid_shape: tuple[int, int, int]) -> BoxMask:
    """Voxels true in any of ``masks``, kept in the box that holds them all.

    All masks must live on a grid of ``grid_shape`` ``(nk, nj, ni)``. Memory is the union
    box, never the full grid (unless the regions span it).
    """
    for m in masks:
        if m.grid_shape != grid_shape:
            raise ValueError(f"mask on grid {m.grid_shape} cannot join grid {grid_shape}")
    filled = [m for m in masks if m.data.size]
    if not filled:
        return BoxMask.empty(grid_shape)
    if len(filled) == 1:
        return filled[0]
    lo = [min(m.offset_kji[a] for m in filled) for a in range(3)]
    hi = [max(m.offset_kji[a] + m.data.shape[a] for m in filled) for a in range(3)]
    data = np.zeros((hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), dtype=bool)
    for m in filled:
        k, j, i = (m.offset_kji[a] - lo[a] for a in range(3))
        nk, nj, ni = m.data.shape
        data[k : k + nk, j : j + nj, i : i + ni] |= m.data
    return BoxMask(data, (lo[0], lo[1], lo[2]), grid_shape)
