"""Label values of a dataset: the region map's classes renumbered 1, 2, 3, ...

Training frameworks want the classes of a label image numbered without gaps (nnU-Net
demands it, MONAI and the Decathlon layout assume it). Every layout therefore uses the
renumbering of the nnU-Net export of the region map (:mod:`segmap.labelmap.formats.nnunet`:
the map's distinct values in increasing order become 1, 2, 3, ...; labels that share a
value are one class) and records it, so a label image maps back to the map's values
voxel for voxel. When the map's values already are 1..n in order, masks are used as
they are; otherwise each mask is rewritten through a lookup table.

A rewritten label file keeps the mask's NIfTI header (affine, qform, sform, units); only
its data type may shrink to uint8. It is gzip level 1 through the standard library's
zlib with no name and time 0, so the same mask always gives the same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from segmap.datasets.errors import DatasetError
from segmap.labelmap import RegionMap
from segmap.labelmap.formats import nnunet
from segmap.labelmap.formats.record import json_record

GZIP_LEVEL = 1


@dataclass(frozen=True)
class LabelClass:
    """One class of the dataset: its label value, name, map value and map labels."""

    value: int
    name: str
    map_value: int
    map_labels: tuple[str, ...]


@dataclass(frozen=True)
class LabelTable:
    """The dataset's classes and the renumbering from the region map's values."""

    region_map: RegionMap

    @cached_property
    def to_label(self) -> dict[int, int]:
        """Map value -> dataset label value (1, 2, ...)."""
        return nnunet.renumbering(self.region_map)

    @cached_property
    def classes(self) -> tuple[LabelClass, ...]:
        """Every class by label value (the names nnU-Net's dataset.json gives them)."""
        back = {new: old for old, new in self.to_label.items()}
        by_value: dict[int, list[str]] = {}
        for r in self.region_map:
            by_value.setdefault(r.value, []).append(r.label)
        return tuple(
            LabelClass(value, name, back[value], tuple(by_value[back[value]]))
            for value, name in nnunet.rows(self.region_map)
        )

    @property
    def is_identity(self) -> bool:
        """True when masks already hold the label values (map values are 1..n)."""
        return all(k == v for k, v in self.to_label.items())

    @property
    def dtype(self) -> np.dtype[Any]:
        """Data type of the label images: uint8 up to 255 classes, else uint16."""
        return np.dtype(np.uint8) if len(self.to_label) <= 255 else np.dtype(np.uint16)

    @cached_property
    def _lut(self) -> npt.NDArray[np.integer]:
        lut = np.zeros(max(self.to_label) + 1, dtype=self.dtype)
        for old, new in self.to_label.items():
            lut[old] = new
        return lut

    def unexpected(self, values: Iterable[int]) -> list[int]:
        """Values among ``values`` that are neither background nor a map value."""
        return sorted(int(v) for v in values if int(v) != 0 and int(v) not in self.to_label)

    def remap(self, mask: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
        """``mask`` (map values) as label values; every value must be one the map holds."""
        top = int(mask.max(initial=0))
        if top >= len(self._lut):
            raise DatasetError(f"the mask holds value {top}, which the region map does not")
        return self._lut[mask]

    def record(self) -> dict[str, Any]:
        """The record a layout embeds: the exact map and ``map value -> label value``."""
        return json_record(
            self.region_map,
            map_value_to_label_value={str(k): v for k, v in sorted(self.to_label.items())},
        )


def write_label_image(mask_path: Path, table: LabelTable, out: IO[bytes]) -> None:
    """Write the mask at ``mask_path`` with label values, as gzipped NIfTI, to ``out``.

    Raises:
        DatasetError: the mask holds a value the map does not (the message names it).
    """
    import nibabel as nib

    image = nib.load(str(mask_path))
    if not isinstance(image, nib.Nifti1Image):
        raise DatasetError(f"{mask_path}: not a NIfTI-1 image")
    data = np.asanyarray(image.dataobj)
    if data.dtype.kind not in "ui":
        raise DatasetError(f"{mask_path}: a mask must hold whole numbers, not {data.dtype}")
    bad = table.unexpected(np.unique(data))
    if bad:
        raise DatasetError(
            f"{mask_path}: the mask holds value(s) {bad} that the region map "
            "does not; convert the case again with the dataset's map"
        )
    header = image.header.copy()
    header.set_data_dtype(table.dtype)
    # No affine: the header's qform and sform are kept exactly as the mask has them.
    relabelled = nib.Nifti1Image(table.remap(data), None, header=header)
    with gzip.GzipFile(
        filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=out, mtime=0
    ) as gz:
        relabelled.to_file_map({"image": nib.FileHolder(fileobj=gz)})
