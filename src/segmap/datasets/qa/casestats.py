"""What one case's mask holds: voxels and volume (mL) per value, and values the map lacks.

Volumes are counted on the mask the dataset uses (native or resampled), with the voxel
volume from the NIfTI header's voxel sizes (mm, so mm³ / 1000 = mL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from segmap.datasets.errors import DatasetError

ML_PER_MM3 = 1e-3


@dataclass(frozen=True)
class MaskStats:
    """Voxels per non-zero value of a mask and the volume of one voxel.

    Attributes:
        voxels: value -> voxel count, for every non-zero value present.
        voxel_mm3: volume of one voxel in mm³.
        spacing_mm: voxel size along the array's axes (i, j, k) in mm.
    """

    voxels: dict[int, int]
    voxel_mm3: float
    spacing_mm: tuple[float, float, float]

    def volume_ml(self, value: int) -> float:
        """Volume of ``value`` in mL (0.0 when absent)."""
        return self.voxels.get(value, 0) * self.voxel_mm3 * ML_PER_MM3


def read_mask(path: Path) -> tuple[npt.NDArray[np.integer], tuple[float, float, float]]:
    """A mask's values ``[i, j, k]`` and voxel size in mm.

    Raises:
        DatasetError: not a readable 3-D NIfTI mask of whole numbers.
    """
    import nibabel as nib

    try:
        image = nib.load(str(path))
        if not isinstance(image, nib.Nifti1Image):
            raise ValueError("not NIfTI-1")
        data = np.asanyarray(image.dataobj)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot be read as NIfTI ({exc})") from None
    if data.ndim != 3 or data.dtype.kind not in "ui":
        raise DatasetError(
            f"{path}: expected a 3-D mask of whole numbers, got {data.dtype} of shape {data.shape}"
        )
    zooms = image.header.get_zooms()
    return data, (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def mask_stats(path: Path) -> MaskStats:
    """Count the values of the mask at ``path``."""
    data, spacing = read_mask(path)
    return MaskStats(count_values(data), float(np.prod(spacing)), spacing)


_CHUNK = 1 << 22  # voxels counted at a time: bincount widens them to 8 bytes each


def count_values(data: npt.NDArray[np.integer]) -> dict[int, int]:
    """Voxels per non-zero value (negative values included) of an integer array."""
    flat = data.reshape(-1, order="A")
    total: dict[int, int] = {}
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK]
        if chunk.dtype.kind == "i" and chunk.size and int(chunk.min()) < 0:
            negative, counts = np.unique(chunk[chunk < 0], return_counts=True)
            for v, n in zip(negative, counts, strict=True):
                total[int(v)] = total.get(int(v), 0) + int(n)
            chunk = chunk[chunk >= 0]
        for v in np.flatnonzero(found := np.bincount(chunk)):
            if v:
                total[int(v)] = total.get(int(v), 0) + int(found[v])
    return dict(sorted(total.items()))
