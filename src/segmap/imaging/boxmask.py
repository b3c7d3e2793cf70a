"""A boolean mask stored as its bounding box on a voxel grid.

Regions are usually small next to the scan, so segmap keeps each one cropped to the box
it occupies: a 512x512x300 CT holds 78 M voxels, a kidney a few hundred thousand. Memory
then scales with the regions, not with the grid times the number of regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, eq=False)
class BoxMask:
    """Boolean voxels of one region inside the box starting at ``offset_kji``.

    Attributes:
        data: boolean array ``[k, j, i]`` covering the box.
        offset_kji: index of the box's first voxel on the full grid, ``(k0, j0, i0)``.
        grid_shape: shape ``(nk, nj, ni)`` of the full grid the box lives on.
    """

    data: npt.NDArray[np.bool_]
    offset_kji: tuple[int, int, int]
    grid_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError("BoxMask data must be 3-D [k, j, i]")
        for o, n, g in zip(self.offset_kji, self.data.shape, self.grid_shape, strict=True):
            if o < 0 or o + n > g:
                raise ValueError(
                    f"box at {self.offset_kji} of shape {self.data.shape} "
                    f"does not fit grid {self.grid_shape}"
                )

    @classmethod
    def empty(cls, grid_shape: tuple[int, int, int]) -> BoxMask:
        """A mask with no voxels on a grid of ``grid_shape`` ``(nk, nj, ni)``."""
        return cls(np.zeros((0, 0, 0), dtype=bool), (0, 0, 0), grid_shape)

    @classmethod
    def from_full(cls, full: npt.NDArray[np.bool_]) -> BoxMask:
        """Crop a full-grid boolean array ``[k, j, i]`` to the box of its true voxels."""
        full = np.asarray(full, dtype=bool)
        shape = (int(full.shape[0]), int(full.shape[1]), int(full.shape[2]))
        if not full.any():
            return cls.empty(shape)
        lo: list[int] = []
        hi: list[int] = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            nz = np.flatnonzero(full.any(axis=other))
            lo.append(int(nz[0]))
            hi.append(int(nz[-1]) + 1)
        box = full[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy()
        return cls(box, (lo[0], lo[1], lo[2]), shape)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Index expression selecting the box on a full-grid array."""
        k0, j0, i0 = self.offset_kji
        nk, nj, ni = self.data.shape
        return (slice(k0, k0 + nk), slice(j0, j0 + nj), slice(i0, i0 + ni))

    @property
    def voxel_count(self) -> int:
        """Number of true voxels."""
        return int(np.count_nonzero(self.data))

    def to_full(self) -> npt.NDArray[np.bool_]:
        """The mask as a full-grid boolean array ``[k, j, i]``."""
        full = np.zeros(self.grid_shape, dtype=bool)
        if self.data.size:
            full[self.slices] = self.data
        return full

    def intersection_count(self, other: BoxMask) -> int:
        """Number of voxels true in both masks (they must share a grid)."""
        if self.grid_shape != other.grid_shape:
            raise ValueError("masks live on different grids")
        if not self.data.size or not other.data.size:
            return 0
        a, b = self.slices, other.slices
        inter = []
        for sa, sb in zip(a, b, strict=True):
            lo, hi = max(sa.start, sb.start), min(sa.stop, sb.stop)
            if lo >= hi:
                return 0
            inter.append((lo, hi))
        sub_a = tuple(
            slice(lo - s.start, hi - s.start) for (lo, hi), s in zip(inter, a, strict=True)
        )
        sub_b = tuple(
            slice(lo - s.start, hi - s.start) for (lo, hi), s in zip(inter, b, strict=True)
        )
        return int(np.count_nonzero(self.data[sub_a] & other.data[sub_b]))
