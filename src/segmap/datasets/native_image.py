"""The image on the scan's own grid, for conversions that did not keep it.

A conversion at a model's spacing (the server's jobs, ``segmap batch --spacing``) writes
the native mask but only the resampled image. A dataset of native pairs needs the image
on the mask's grid: :func:`add_native_image` reads the scan's DICOM series again, the
way the conversion did (the series the report names; the fix-up when the report lists
one), writes ``image.nii.gz`` and checks that its grid is the mask's before the
conversion is given it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from segmap.datasets.errors import DatasetError
from segmap.datasets.sources import FILE_NAMES, Conversion, OutputFile
from segmap.errors import SegmapError
from segmap.imaging.nifti import write_nifti
from segmap.imaging.pixels import read_pixels
from segmap.imaging.series import load_series
from segmap.pipeline.report import file_sha256

AFFINE_TOLERANCE_MM = 1e-3


def add_native_image(
    conversion: Conversion, dicom_files: Sequence[Path], out_dir: Path, *, fixup: bool = False
) -> Conversion:
    """``conversion`` with an ``image`` output written into ``out_dir`` from its scan.

    Args:
        conversion: a conversion with a native ``mask`` and no ``image``.
        dicom_files: the scan's DICOM files.
        out_dir: an existing folder; ``image.nii.gz`` is written there.
        fixup: repair the series as the conversion did (its report lists fix-ups).

    Raises:
        DatasetError: the conversion has no native mask, the series cannot be read, or
            the image would not lie on the mask's grid (the scan changed since).
    """
    mask = conversion.outputs.get("mask")
    if mask is None:
        raise DatasetError(
            f"{conversion.key}: the conversion kept no mask on the scan's own grid; "
            "convert it again"
        )
    try:
        series = load_series(list(dicom_files), conversion.series_instance_uid, fixup=fixup)
        volume = read_pixels(series)
    except (SegmapError, ValueError) as exc:
        raise DatasetError(
            f"{conversion.key}: its scan cannot be read for the image on its own grid ({exc})"
        ) from None
    path = out_dir / FILE_NAMES["image"]
    write_nifti(volume, series.grid, path, description="segmap image")
    del volume
    _check_same_grid(conversion.key, path, mask.path)
    size, spacing = series.grid.size, series.grid.spacing
    image = OutputFile(
        path,
        file_sha256(path),
        (int(size[0]), int(size[1]), int(size[2])),
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
    )
    return dataclasses.replace(conversion, outputs={**conversion.outputs, "image": image})


def _check_same_grid(key: str, image: Path, mask: Path) -> None:
    a, b = nib.load(str(image)), nib.load(str(mask))
    if not isinstance(a, nib.Nifti1Image) or not isinstance(b, nib.Nifti1Image):
        raise DatasetError(f"{key}: the image or the mask is not a NIfTI-1 file")
    if a.shape[:3] != b.shape[:3] or not np.allclose(a.affine, b.affine, atol=AFFINE_TOLERANCE_MM):
        raise DatasetError(
            f"{key}: the scan's images no longer lie on the grid of its mask (the series "
            f"was changed after the conversion: {a.shape[:3]} vs {b.shape[:3]} voxels); "
            "convert the collection again"
        )
