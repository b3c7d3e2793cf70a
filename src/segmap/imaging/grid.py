"""Voxel grids and their geometry.

Conventions used everywhere in segmap:

* Arrays holding a volume are indexed ``[k, j, i]``: slice, row, column. This is the
  order in which DICOM stores pixels (a slice is ``Rows x Columns``), so painting one
  slice touches one contiguous block.
* ``i`` runs along a row (the DICOM column index), ``j`` down a column (the DICOM row
  index), ``k`` along the slice normal, in the order slices were sorted.
* World coordinates are patient LPS in millimetres, as in DICOM. NIfTI wants RAS; the
  grid offers both affines and names them for their space.
* ``spacing`` is ``(di, dj, dk)`` in mm: column spacing, row spacing, slice spacing.
  DICOM ``PixelSpacing`` is ``[row spacing, column spacing]`` = ``[dj, di]``.
* ``direction`` is a 3x3 matrix whose columns are the unit vectors of ``i``, ``j`` and
  ``k`` in LPS.
* ``origin_lps`` is the centre of voxel ``(i, j, k) = (0, 0, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Homogeneous matrix flipping the first two world axes: LPS <-> RAS."""


@dataclass(frozen=True, eq=False)
class VoxelGrid:
    """A regular 3-D voxel grid placed in patient space.

    Attributes:
        size: ``(ni, nj, nk)`` voxel counts: columns, rows, slices.
        spacing: ``(di, dj, dk)`` in mm along ``i``, ``j``, ``k``.
        origin_lps: centre of voxel ``(0, 0, 0)`` in LPS mm.
        direction: 3x3; column ``n`` is the LPS unit vector of voxel axis ``n``.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin_lps: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        if len(self.size) != 3 or any(int(n) < 1 for n in self.size):
            raise ValueError(f"grid size must be three positive counts, got {self.size}")
        if len(self.spacing) != 3 or any(not float(s) > 0 for s in self.spacing):
            raise ValueError(
                f"grid spacing must be three positive lengths in mm, got {self.spacing}"
            )
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3):
            raise ValueError("grid direction must be a 3x3 matrix")
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise ValueError("grid direction columns must be orthonormal")

    @classmethod
    def from_arrays(
        cls,
        size: tuple[int, int, int] | npt.ArrayLike,
        spacing: npt.ArrayLike,
        origin_lps: npt.ArrayLike,
        direction: npt.ArrayLike,
    ) -> VoxelGrid:
        """Build a grid from array-likes (``direction`` is 3x3, columns are axes)."""
        s = tuple(int(n) for n in np.asarray(size).ravel())
        sp = tuple(float(x) for x in np.asarray(spacing, dtype=float).ravel())
        o = tuple(float(x) for x in np.asarray(origin_lps, dtype=float).ravel())
        d = np.asarray(direction, dtype=float).reshape(3, 3)
        return cls(
            size=(s[0], s[1], s[2]),
            spacing=(sp[0], sp[1], sp[2]),
            origin_lps=(o[0], o[1], o[2]),
            direction=tuple((float(r[0]), float(r[1]), float(r[2])) for r in d),
        )

    # --- shapes -------------------------------------------------------------------

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """Shape of a numpy array holding this grid: ``(nk, nj, ni)``."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³."""
        return float(np.prod(self.spacing))

    @property
    def direction_matrix(self) -> npt.NDArray[np.float64]:
        """3x3 direction matrix (columns are the LPS unit vectors of i, j, k)."""
        return np.asarray(self.direction, dtype=float)

    # --- affines ------------------------------------------------------------------

    @property
    def voxel_to_lps(self) -> npt.NDArray[np.float64]:
        """4x4 affine taking homogeneous ``(i, j, k, 1)`` to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin_lps
        return a

    @property
    def voxel_to_ras(self) -> npt.NDArray[np.float64]:
        """4x4 affine taking homogeneous ``(i, j, k, 1)`` to RAS mm (the NIfTI affine)."""
        return LPS_TO_RAS @ self.voxel_to_lps

    @property
    def lps_to_voxel(self) -> npt.NDArray[np.float64]:
        """4x4 affine taking LPS mm to continuous voxel indices ``(i, j, k)``."""
        return np.asarray(np.linalg.inv(self.voxel_to_lps), dtype=np.float64)

    def voxel_centres_lps(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """LPS mm of the centres of voxels given as an ``(N, 3)`` array of ``(i, j, k)``."""
        p = np.asarray(ijk, dtype=float).reshape(-1, 3)
        a = self.voxel_to_lps
        return p @ a[:3, :3].T + a[:3, 3]

    def lps_to_continuous_index(self, points_lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous ``(i, j, k)`` of ``(N, 3)`` LPS points (voxel centres are integers)."""
        p = np.asarray(points_lps, dtype=float).reshape(-1, 3)
        a = self.lps_to_voxel
        return p @ a[:3, :3].T + a[:3, 3]

    @property
    def slice_normal_lps(self) -> npt.NDArray[np.float64]:
        """Unit vector of the ``k`` axis in LPS."""
        return self.direction_matrix[:, 2].copy()

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical extent along i, j, k in mm (voxel count times spacing)."""
        return (
            self.size[0] * self.spacing[0],
            self.size[1] * self.spacing[1],
            self.size[2] * self.spacing[2],
        )

    def same_geometry(self, other: VoxelGrid, tol_mm: float = 1e-3) -> bool:
        """True when both grids place every voxel centre within ``tol_mm`` of each other."""
        if self.size != other.size:
            return False
        corners = np.array(
            [
                [0, 0, 0],
                [self.size[0] - 1, self.size[1] - 1, self.size[2] - 1],
                [self.size[0] - 1, 0, 0],
                [0, self.size[1] - 1, 0],
                [0, 0, self.size[2] - 1],
            ],
            dtype=float,
        )
        d = self.voxel_centres_lps(corners) - other.voxel_centres_lps(corners)
        return bool(np.all(np.abs(d) <= tol_mm))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (units: voxels, mm; space: LPS and RAS)."""
        return {
            "size_ijk": list(self.size),
            "spacing_mm": [round(s, 6) for s in self.spacing],
            "origin_lps_mm": [round(o, 6) for o in self.origin_lps],
            "direction_lps": [list(r) for r in self.direction],
            "voxel_to_ras": [[round(x, 6) for x in row] for row in self.voxel_to_ras.tolist()],
        }
