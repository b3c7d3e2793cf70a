"""Two masks of one scan compared region by region: the figures of the QA's agreement table.

Both the command line's freeze (two cases of a batch tree on one scan) and the server
(several collections of one scan converted for a model) call :func:`compare_masks`, so
the table means the same wherever it is made. Each region of the dataset's table that
either mask holds gets Dice and HD95 (:mod:`.agreement`); the masks are compared as
written, voxel ``[i, j, k]`` against voxel ``[i, j, k]``, with the first mask's voxel
sizes (mm) from its NIfTI header.
"""

from __future__ import annotations

from pathlib import Path

from segmap.datasets.labels import LabelTable
from segmap.datasets.qa.agreement import agreement
from segmap.datasets.qa.casestats import read_mask
from segmap.datasets.qa.report import RegionAgreement

DECIMALS = 4
"""Dice and HD95 (mm) are kept to this many decimals in the report."""


def compare_masks(a: Path, b: Path, table: LabelTable) -> tuple[RegionAgreement, ...] | None:
    """Dice and HD95 per region of the masks at ``a`` and ``b`` (NIfTI, map values).

    Regions neither mask holds are left out. None when the two masks are not on one
    grid (different shapes): there is nothing to compare voxel by voxel then.

    Raises:
        DatasetError: a file is not a readable 3-D NIfTI mask.
    """
    ma, spacing = read_mask(a)
    mb, _ = read_mask(b)
    if ma.shape != mb.shape:
        return None
    regions = []
    for cls in table.classes:
        ra, rb = ma == cls.map_value, mb == cls.map_value
        if ra.any() or rb.any():
            result = agreement(ra, rb, spacing)
            regions.append(
                RegionAgreement(cls.name, cls.value, _round(result.dice), _round(result.hd95_mm))
            )
    return tuple(regions)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, DECIMALS)
