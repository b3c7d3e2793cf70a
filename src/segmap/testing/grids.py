"""Voxel grids for synthetic series: axial (HFS or FFS) and oblique, centred on the isocentre.

Directions are rounded to the cosines and origins to the millimetres a DICOM file can hold,
so a grid read back from the written headers equals the grid written.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from segmap.imaging.grid import VoxelGrid
from segmap.testing.dicomfields import COORD_DECIMALS, COSINE_DECIMALS


def axial_grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    patient_position: str = "HFS",
    origin_lps: tuple[float, float, float] | None = None,
) -> VoxelGrid:
    """An axial grid as scanners write it, centred on the isocentre unless ``origin_lps``.

    ``HFS``: rows run to the patient's left (+x), columns posterior (+y), slices head-wards
    (+z). ``FFS``: rows run to the patient's right (-x), slices foot-wards (-z), as some
    scanners write feet-first scans. ``size`` is ``(ni, nj, nk)``, ``spacing`` ``(di, dj,
    dk)`` in mm.
    """
    if patient_position.upper() == "FFS":
        direction = np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]]).T
    else:
        direction = np.eye(3)
    return _centred_grid(size, spacing, direction, origin_lps)


def oblique_grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    angles_deg: tuple[float, float, float] = (17.0, -11.0, 23.0),
    origin_lps: tuple[float, float, float] | None = None,
) -> VoxelGrid:
    """A grid rotated about x, y and z by ``angles_deg`` (degrees), centred unless given."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return _centred_grid(size, spacing, rz @ ry @ rx, origin_lps)


def _centred_grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    direction: npt.NDArray[np.float64],
    origin_lps: tuple[float, float, float] | None,
) -> VoxelGrid:
    d = np.round(np.asarray(direction, dtype=float), COSINE_DECIMALS)
    if origin_lps is None:
        half = (np.asarray(size, dtype=float) - 1) / 2 * np.asarray(spacing, dtype=float)
        origin = -(d @ half)
    else:
        origin = np.asarray(origin_lps, dtype=float)
    return VoxelGrid.from_arrays(size, spacing, np.round(origin, COORD_DECIMALS), d)
